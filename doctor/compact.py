"""Memory of large namespaces: identical parts of parsed list bodies become one object.

A 10,000-pod namespace is ~85 MB of JSON that parses into ~410 MB of dicts and strings, most of it
repeated: every KubernetesExecutor task pod carries the same container env (50-odd variables) and
volumes, and events repeat the same kinds, reasons, hosts and messages. :func:`compact` replaces
each such part with one shared object of the same content (dicts and lists compared by their JSON
encoding), and :func:`parse_list_in_slices` does it slice by slice while parsing, so the peak stays
near the compacted size (``python -m bench``, 10,000 pods + 40,000 events: peak RSS of a run
685 MB -> ~350 MB).

Sharing happens as a body enters a source, before redaction (equal raw parts redact to equal
parts, and the redactor masks a shared env list once); after that bodies are read-only, so sharing
is invisible to the checks. Anything of an unexpected shape is left as it is.
"""
from __future__ import annotations

from typing import Any

import orjson


class Interner:
    """One shared object per distinct value (dicts and lists compared by their JSON encoding).
    ``shared``: the ids of the objects :func:`share_leaves` already walked or shared (held by ``objs``)."""

    __slots__ = ("objs", "strs", "shared")

    def __init__(self) -> None:
        self.objs: dict[bytes, Any] = {}
        self.strs: dict[str, str] = {}
        self.shared: set[int] = set()


# Measured on the bench's 10,000-pod namespace (bench/generate.py): container env lists and pod
# volumes are ~45% of a task pod's memory for a few small encodings per pod; sharing more (volume
# mounts, statuses, label strings) saved ~10% more memory for twice the time. Events share their
# repeated strings and ``source`` (on 200,000 events: 0.8 s for 170 MB less).
_CONTAINER_FIELDS = ("initContainers", "containers")
_EVENT_STRS = ("reason", "type", "message", "reportingComponent", "reportingInstance")
_REF_STRS = ("kind", "namespace", "apiVersion", "fieldPath")


def _pods(items: list, it: Interner) -> None:
    objs, dumps, shared = it.objs, orjson.dumps, it.shared
    for p in items:
        spec = p.get("spec") if isinstance(p, dict) else None
        if not isinstance(spec, dict):
            continue
        for field in _CONTAINER_FIELDS:
            cs = spec.get(field)
            if isinstance(cs, list):
                for c in cs:
                    if isinstance(c, dict):
                        env = c.get("env")
                        if isinstance(env, list) and env:
                            c["env"] = env = objs.setdefault(dumps(env), env)
                            shared.add(id(env))
        vols = spec.get("volumes")
        if isinstance(vols, list):
            for i, v in enumerate(vols):
                if isinstance(v, dict):
                    pr = v.get("projected")
                    if isinstance(pr, dict):   # the per-pod token volume: only its name differs
                        v["projected"] = pr = objs.setdefault(dumps(pr), pr)
                        shared.add(id(pr))
                    else:
                        vols[i] = v = objs.setdefault(dumps(v), v)
                        shared.add(id(v))


def _events(items: list, it: Interner) -> None:
    strs, objs, dumps = it.strs, it.objs, orjson.dumps
    for e in items:
        if not isinstance(e, dict):
            continue
        for k in _EVENT_STRS:
            x = e.get(k)
            if x.__class__ is str:
                e[k] = strs.setdefault(x, x)
        io = e.get("involvedObject")
        if isinstance(io, dict):
            for k in _REF_STRS:
                x = io.get(k)
                if x.__class__ is str:
                    io[k] = strs.setdefault(x, x)
        md = e.get("metadata")
        if isinstance(md, dict):
            x = md.get("namespace")
            if x.__class__ is str:
                md["namespace"] = strs.setdefault(x, x)
        src = e.get("source")
        if isinstance(src, dict) and src:
            e["source"] = src = objs.setdefault(dumps(src), src)
            it.shared.add(id(src))


def compact(path: str, body: Any, it: Interner) -> Any:
    """Share the repeated parts of a parsed list body read from ``path`` (in place); returns it."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return body
    if path.endswith("/pods"):
        fn = _pods
    elif path.endswith("/events"):
        fn = _events
    else:
        return body
    try:
        fn(body["items"], it)
    except Exception:  # noqa: BLE001 - an odd shape (an unencodable value) costs memory, never data
        pass
    return body


# --- sharing deeper, for a live read --------------------------------------------------------------
#
# After :func:`compact`, a task pod is still ~20 KB of Python objects (10,000 pods: 47 dicts and 120
# strings each), most of it equal in every pod: strings (images, mount paths, node names, label
# values, timestamps) and small all-scalar dicts and lists (volume mounts, security contexts,
# tolerations, condition and state records). Sharing those too brings a pod to ~8 KB and an event
# from ~1.8 KB to ~1.3 KB, for ~3x the CPU of ``compact``. A live run pays it page by page while
# the other reads wait on the network (50,000 pods + 200,000 events: peak RSS 2.5 GB -> <1 GB);
# an offline run, CPU-bound, keeps the cheaper sharing of ``compact`` alone.

LEAF_MAX = 8   # dicts and lists of up to this many values are shared; larger ones rarely repeat


def share_leaves(items: list, it: Interner) -> None:
    """Share, in place, every string of ``items`` (parsed and redacted list items), and every small
    dict or list whose values are scalars or parts already shared, with an equal one seen before
    (compared by their JSON encoding), from the leaves up (``{"drop": ["ALL"]}`` once ``["ALL"]``
    repeats); what is already shared (``it.shared``: env lists and volumes :func:`compact` shared)
    is not walked again."""
    strs, objs, shared, dumps = it.strs.setdefault, it.objs, it.shared, orjson.dumps

    def walk(o):
        repeats = True      # every dict or list inside is one shared before: o may repeat too
        if o.__class__ is dict:
            for k, v in o.items():
                c = v.__class__
                if c is str:
                    o[k] = strs(v, v)
                elif (c is dict or c is list) and id(v) not in shared:
                    w = walk(v)
                    if w is v:
                        repeats = False
                    else:
                        o[k] = w
        else:
            for i, v in enumerate(o):
                c = v.__class__
                if c is str:
                    o[i] = strs(v, v)
                elif (c is dict or c is list) and id(v) not in shared:
                    w = walk(v)
                    if w is v:
                        repeats = False
                    else:
                        o[i] = w
        if repeats and len(o) <= LEAF_MAX:
            e = dumps(o)
            same = objs.get(e)
            if same is not None:
                return same
            objs[e] = o
            shared.add(id(o))
        return o

    try:
        for i, x in enumerate(items):
            if (x.__class__ is dict or x.__class__ is list) and id(x) not in shared:
                items[i] = walk(x)
    finally:
        # ``walk`` refers to itself: a cycle holding the interner, which nothing collects while
        # the cyclic GC is off (as in a run); break it
        walk = None  # noqa: F841


def compact_more(path: str, body: Any, it: Interner) -> Any:
    """:func:`share_leaves` over the items of a pod or event list body (after ``compact`` and the
    redactor); anything else is returned as it is."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list) or \
            not path.endswith(("/pods", "/events")):
        return body
    try:
        share_leaves(body["items"], it)
    except Exception:  # noqa: BLE001 - an odd shape (an unencodable value) costs memory, never data
        pass
    return body


# --- parsing a large list in slices --------------------------------------------------------------
#
# Sharing parts after parsing does not lower the peak: orjson builds the whole unshared list first
# (10,000 pods: the 85 MB file plus ~410 MB of objects). A list whose items are objects that start
# with ``"metadata"`` (pods, events: every Kubernetes list as the API server encodes it) can be cut
# between items without a JSON scanner: in JSON text the bytes ``},{"metadata":{`` never occur
# inside a string (a quote in a string is escaped), so they only appear where one object ends and
# the next begins in an array. Each slice of items (~256 KB) is parsed, compacted and redacted
# before the next is read, so the peak is the compacted list plus one slice. Every separator must
# turn out to be a boundary between two items of the list (a separator inside a nested array would
# leave a slice with fewer items than separators, or not JSON at all); anything unexpected gives
# None and the caller parses the whole body as usual.

ITEM_SEP = b'},{"metadata":{'
# Small slices keep a slice's fresh objects in the CPU caches while compact and the redactor walk
# them (50,000 pods: 4 MB slices 9.4 s, 1 MB ~7.8 s, 64-256 KB ~6.7 s; 10,000 pods 2.1 s -> ~1.8 s).
SLICE_BYTES = 256 * 1024


def parse_list_in_slices(buf: Any, process, slice_bytes: int | None = None, release=None) -> dict | None:
    """The list body in ``buf`` (bytes or an mmap), each slice of about ``slice_bytes`` of items
    passed through ``process(items)`` (in place) as soon as it is parsed; None when the bytes do
    not cut cleanly. ``release(end)`` is called once the bytes before ``end`` are no longer needed."""
    slice_bytes = slice_bytes or SLICE_BYTES
    find = buf.find
    cuts = [find(ITEM_SEP)]          # the end of the first item, then one separator per slice
    if cuts[0] == -1:
        return None
    while True:
        nxt = find(ITEM_SEP, cuts[-1] + slice_bytes)
        if nxt == -1:
            break
        cuts.append(nxt)
    if len(cuts) < 3:
        return None
    try:
        return _parse_cut(buf, cuts, process, release)
    except orjson.JSONDecodeError:   # a cut inside a nested array, or invalid JSON: parse it whole
        return None


def _parse_cut(buf: Any, cuts: list[int], process, release) -> dict | None:
    with memoryview(buf) as view:   # released before the caller closes an mmap
        return _parse_cut_view(buf, view, cuts, process, release)


def _parse_cut_view(buf: Any, view: memoryview, cuts: list[int], process, release) -> dict | None:
    middle: list = []
    join = b"".join
    for a, b in zip(cuts, cuts[1:]):
        raw = join((b"[", view[a + 2: b + 1], b"]"))   # one copy of the slice, not three
        chunk = orjson.loads(raw)
        # every separator inside the slice must be a boundary between two of its items
        if not isinstance(chunk, list) or len(chunk) != raw.count(ITEM_SEP) + 1 or \
                not all(isinstance(x, dict) for x in chunk):
            return None
        process(chunk)
        middle += chunk
        if release is not None:
            release(b)
    tail = buf[cuts[-1] + 1:]
    body = orjson.loads(buf[: cuts[0] + 1] + tail)
    if not isinstance(body, dict):
        return None
    items = body.get("items")
    # the first item (before the first cut) and the items after the last cut
    if not isinstance(items, list) or len(items) != 2 + tail.count(ITEM_SEP) or \
            not all(isinstance(x, dict) for x in items):
        return None
    process(items)
    body["items"] = items[:1] + middle + items[1:]
    return body
