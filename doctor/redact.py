"""Redaction where data enters: every object read (live or from a snapshot) passes through here
before a context, a report or a collected file can see it.

The doctor never reads Secret objects. What remains sensitive sits in ConfigMaps (``airflow.cfg``
keys), container env values, annotations that echo whole manifests, and log lines. Values of
sensitive keys are replaced by ``MASK``; passwords inside URIs keep the URI's shape so a host can
still be diagnosed (``postgresql://airflow:<redacted>@10.0.0.3/airflow``).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterable

MASK = "<redacted>"

# Key names (airflow.cfg keys, ConfigMap keys, the KEY part of AIRFLOW__SECTION__KEY) whose values are secret.
_SENSITIVE_KEY = re.compile(
    r"(?ix)^(?:"
    r"sql_alchemy_conn|fernet_key|secret_key|jwt_secret|broker_url|result_backend|"
    r"connection|conn_uri|dsn|.*_dsn|.*webhook.*|"
    r".*pass(?:word|wd)?.*|.*token.*|.*secret.*|.*credential.*|.*private_?key.*|.*api_?key.*|"
    r".*access_?key.*|.*client_?key.*|.*_cmd|.*sas_?key.*|.*auth_?key.*|ssh_?key|gitsshkey"
    r")$"
)
# Keys that look sensitive by name but hold no secret (ids, paths, switches).
_NOT_SENSITIVE = re.compile(
    r"(?ix)^(?:.*_conn_id|.*_key_path|.*_secret_name|.*secretname|.*_file|.*_path|"
    r"secrets_backend|backend_kwargs_path|auth_manager|.*_secret_key_ref)$"
)
# Whole env vars whose value is secret by convention.
_SENSITIVE_ENV = re.compile(r"(?i)^(?:AIRFLOW_CONN_.+|AIRFLOW_VAR_.+|.+_CMD|.+_SECRET|.+_PASSWORD|.+_TOKEN)$")

# ``key=value`` / ``"key": "value"`` secrets in free text, for these key words.
_KV_WORDS = ("password", "passwd", "pwd", "secret", "token", "access_token", "refresh_token", "api_key", "apikey",
             "fernet_key", "secret_key", "jwt_secret", "private_key")
# The value stays on the key's line (``secret:`` opening a YAML mapping is not a secret), and prose
# after a colon ("Invalid auth token: Signature verification failed") is not a value.
# A quoted value is masked whole.
_KV = re.compile(r"(?i)([\"']?(?:" + "|".join(_KV_WORDS) + r")[\"']?[ \t]*[:=][ \t]*)"
                 r"(?:[\"'][^\"'\n]*[\"']?|(?!(?<=:[ \t])(?-i:[A-Z][a-z]+[ \t][a-z]+))[^\s\"',;&}]+)")
_URI_PASSWORD = re.compile(r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\"]*:)(?P<pw>[^\s@'\"]+)(?P<at>@)")
# What every match of _URI_PASSWORD holds from its ``://`` on: a search that starts at the literal
# ``://`` (re skips to it) instead of trying the scheme at every word (a 1 KB log: ~1 µs, not ~25 µs).
_URI_PROBE = re.compile(r"://[^\s:/@'\"]*:[^\s@'\"]+@")
_LOG_PATTERNS = [
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}"), r"\1" + MASK),
    (re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?!bearer\b)[^\s\"',]+"), r"\1" + MASK),
    (_KV, r"\1" + MASK),
    (re.compile(r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
     "-----BEGIN PRIVATE KEY-----" + MASK + "-----END PRIVATE KEY-----"),
    (re.compile(r"\bya29\.[A-Za-z0-9._\-]{10,}"), MASK),          # Google OAuth access tokens
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"), MASK),             # Google API keys
    # A database host that holds '@': the tail of a password that was not URL-encoded
    # (the image's entrypoint prints ``DB_HOST=123@10.0.0.5`` and ``run_nc '123@10.0.0.5'``; libpq
    # ``could not translate host name "123@10.0.0.5"``): what stands before the last '@' is secret.
    (re.compile(r"""(?i)(\bDB_HOST=|\brun_nc\s+'|host name ")[^\s'"]*@"""), r"\1" + MASK + "@"),
]
# A command-line flag whose next argument is a secret (``--password hunter2``, ``--requirepass x``).
_SECRET_FLAG = re.compile(r"(?i)^--?[\w.-]*(?:pass(?:word|wd)?|token|secret|api-?key|private-?key|credential)[\w.-]*$")
# Annotations that echo whole manifests (and so whatever secret a manifest held).
_ECHO_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def _d(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _l(v: Any) -> list:
    return v if isinstance(v, list) else []


# Speed (a 10,000-pod namespace is ~600,000 env values, args, annotations and messages, plus
# logs): the result is exactly that of every pattern in turn, but
# - a pattern runs only on text holding its literal core (``_LOG_TRIGGERS``: a ``(?i)`` keyword in
#   ``text.lower()``; ASCII text only, since re's IGNORECASE also folds some non-ASCII letters);
# - the key=value pattern is tried only where one of its key words starts, not at every offset;
# - results for short texts (env values and args repeat across pods) are remembered, and the
#   key/env-name verdicts are cached. All of this is a pure function of the input.
_URI_TRIGGER = "://"
_LOG_TRIGGERS: list[tuple[str, ...] | None] = [   # per _LOG_PATTERNS entry; None: always run
    ("bearer",), ("authorization",), ("passw", "pwd", "secret", "token", "api_key", "apikey", "fernet_key",
                                      "private_key"),
    ("-----begin ",), ("ya29.",), ("aiza",), ("db_host=", "run_nc", "host name"),
]
_GATED = [(p, r, _LOG_TRIGGERS[i] if i < len(_LOG_TRIGGERS) else None) for i, (p, r) in enumerate(_LOG_PATTERNS)]
# The key words of _KV by the trigger each holds: a word is only in a text that holds its trigger,
# so only the words of the triggers found are looked for; a word that holds none (there is none
# today) is always looked for.
_KV_TRIGGERS = next(ts for p, r, ts in _GATED if p is _KV) or ()
_KV_WORDS_BY_TRIGGER = {t: tuple(w for w in _KV_WORDS if t in w) for t in _KV_TRIGGERS}
_KV_WORDS_UNGATED = tuple(w for w in _KV_WORDS if not any(t in w for t in _KV_TRIGGERS))
_TEXT_MEMO: dict[str, str] = {}
_TEXT_MEMO_MAX_LEN = 1024
_TEXT_MEMO_MAX_SIZE = 100_000
_TEXT_SEEN: set[int] = set()
_TEXT_SEEN_MAX_SIZE = 200_000


def _sub_kv(text: str, low: str, repl: str, words: Iterable[str] = _KV_WORDS) -> str:
    """``_KV.sub`` tried only at the offsets where a key word (or a quote before one) starts; the
    same matches, since every match starts there (``low`` is ``text.lower()``, same length).
    ``words``: the key words to look for (those ``low`` can hold: see ``_KV_WORDS_BY_TRIGGER``)."""
    starts = set()
    for w in words:
        i = low.find(w)
        while i != -1:
            starts.add(i)
            if i and text[i - 1] in "\"'":
                starts.add(i - 1)
            i = low.find(w, i + 1)
    out: list[str] = []
    last = 0
    # ``m.expand`` re-parses the template on every call (Python 3.11); the usual one is built here.
    fast = repl == "\\1" + MASK
    for st in sorted(starts):
        if st < last:
            continue
        m = _KV.match(text, st)
        if m:
            out += (text[last:st], m.group(1) + MASK if fast else m.expand(repl))
            last = m.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


# Every text the redaction of free text writes that its input need not hold (the rest is copied).
_WRITTEN = ("-----BEGIN PRIVATE KEY-----" + MASK + "-----END PRIVATE KEY-----",)


def kept_as_is(needle: str) -> bool:
    """Whether redacted text holds ``needle`` only where the text before redaction did (and, ASCII,
    where its UTF-8 bytes did): no character of what redaction writes at a seam (``<``, ``>``,
    ``-``) and not inside what it writes. Such a literal can be looked for in a file's bytes
    before reading it (``SnapshotSource.lacks``)."""
    return bool(needle) and needle.isascii() and not any(c in needle for c in "<>-") and \
        not any(needle in w for w in _WRITTEN)


def _all_patterns(value: str) -> str:
    out = _URI_PASSWORD.sub(lambda m: m.group("pre") + MASK + m.group("at"), value)
    for pattern, repl in _LOG_PATTERNS:
        out = pattern.sub(repl, out)
    return out


def _masked_text(value: str) -> str:
    out = _TEXT_MEMO.get(value)
    if out is not None:
        return out
    if not value.isascii():
        out = _all_patterns(value)
    else:
        # the patterns in turn, each only when one of its triggers is in the text as it stands
        # (most texts hold none: one scan per trigger); key=value looks for the key words of the
        # triggers found
        out = value
        low = out.lower()
        if _URI_TRIGGER in out and _URI_PROBE.search(out) is not None:
            out = _URI_PASSWORD.sub(lambda m: m.group("pre") + MASK + m.group("at"), out)
            low = out.lower()
        for pattern, repl, triggers in _GATED:
            if pattern is _KV and triggers is not None:
                words = [w for t in triggers if t in low for w in _KV_WORDS_BY_TRIGGER[t]]
                words += _KV_WORDS_UNGATED
                if not words:
                    continue
                new = _sub_kv(out, low, repl, words)
            else:
                if triggers is not None:
                    for t in triggers:
                        if t in low:
                            break
                    else:
                        continue
                new = _sub_kv(out, low, repl) if pattern is _KV else pattern.sub(repl, out)
            if new is not out:
                out, low = new, new.lower()
    return _remember(value, out)


def _remember(value: str, out: str) -> str:
    # Only texts seen before are kept: most texts are one-offs (a task pod's ``--json-string``, run
    # ids), and keeping them would fill the memo (and hold their strings) for nothing. What was seen
    # is remembered by hash only. Full: keep what is there (the values seen first, env and common
    # messages, are the ones that repeat).
    if len(value) <= _TEXT_MEMO_MAX_LEN and len(_TEXT_MEMO) < _TEXT_MEMO_MAX_SIZE:
        h = hash(value)
        if h in _TEXT_SEEN:
            _TEXT_MEMO[value] = out
        else:
            if len(_TEXT_SEEN) >= _TEXT_SEEN_MAX_SIZE:
                _TEXT_SEEN.clear()
            _TEXT_SEEN.add(h)
    return out


_FLAG_MEMO: dict[str, bool] = {}


def _secret_flag(arg: str) -> bool:
    """``_SECRET_FLAG.match(arg)``, remembered (a command line repeats across pods)."""
    v = _FLAG_MEMO.get(arg)
    if v is None:
        v = _SECRET_FLAG.match(arg) is not None
        if len(_FLAG_MEMO) < _TEXT_MEMO_MAX_SIZE:
            _FLAG_MEMO[arg] = v
    return v


@lru_cache(maxsize=16384)
def _sensitive_key(key: str) -> bool:
    k = key.strip().lower().replace("-", "_")
    return bool(_SENSITIVE_KEY.match(k)) and not _NOT_SENSITIVE.match(k)


@lru_cache(maxsize=16384)
def _sensitive_env(name: str) -> bool:
    if _SENSITIVE_ENV.match(name):
        return True
    if name.startswith("AIRFLOW__"):
        parts = name.split("__")
        return len(parts) >= 3 and _sensitive_key(parts[-1])
    return _sensitive_key(name)


class Redactor:
    """Masks secrets and remembers which keys it masked (names, never values)."""

    def __init__(self) -> None:
        self.masked: set[str] = set()
        # env lists already masked, by identity: a list shared by many pods (doctor/compact.py runs
        # first) is walked once. Holding the list keeps its id from being reused.
        self._env_done: dict[int, list] = {}

    def forget(self) -> None:
        """Let go of the env lists already masked (what was read before is being let go of; a list
        seen again is masked again, which changes nothing)."""
        self._env_done = {}

    # --- primitives -------------------------------------------------------------------------
    def is_sensitive_key(self, key: str) -> bool:
        return _sensitive_key(key)

    def is_sensitive_env(self, name: str) -> bool:
        return _sensitive_env(name)

    def text(self, value: str) -> str:
        """Mask credentials inside free text (URIs with passwords, tokens, key=value secrets)."""
        if not value:
            return value
        return _masked_text(value)

    def ini(self, text: str, where: str) -> str:
        """Mask values of sensitive keys in an INI document such as airflow.cfg."""
        lines = []
        section = ""
        for line in text.splitlines(keepends=True):
            stripped = line.strip()
            if stripped.startswith("[") and stripped.endswith("]"):
                section = stripped[1:-1]
            elif stripped and not stripped.startswith(("#", ";")) and ("=" in stripped or ":" in stripped):
                sep = "=" if "=" in stripped else ":"
                k, _, v = line.partition(sep)
                if v.strip() and self.is_sensitive_key(k):
                    self.masked.add(f"{where}[{section}] {k.strip()}")
                    end = "\n" if line.endswith("\n") else ""
                    line = f"{k}{sep} {MASK}{end}"
                    lines.append(line)
                    continue
            lines.append(self.text(line))
        return "".join(lines)

    # --- Kubernetes objects -----------------------------------------------------------------
    def configmap(self, cm: dict) -> dict:
        name = _d(cm.get("metadata")).get("name") or "?"
        data = cm.get("data")
        if isinstance(data, dict):
            for k, v in list(data.items()):
                if not isinstance(v, str):
                    continue
                if self.is_sensitive_key(k):
                    data[k] = MASK
                    self.masked.add(f"configmap {name}: {k}")
                elif k.endswith(".cfg") or k.endswith(".ini"):
                    data[k] = self.ini(v, f"configmap {name}: {k} ")
                else:
                    data[k] = self.yaml_env(self.text(v), f"configmap {name}: {k}")
        if "binaryData" in cm and isinstance(cm["binaryData"], dict):
            for k in cm["binaryData"]:
                self.masked.add(f"configmap {name}: {k} (binary)")
            cm["binaryData"] = {k: MASK for k in cm["binaryData"]}
        self.metadata(cm)
        return cm

    def yaml_env(self, text: str, where: str) -> str:
        """Mask ``value:`` lines that follow ``- name: <SENSITIVE>`` in a YAML manifest (pod templates)."""
        if "name:" not in text or "value:" not in text:
            return text
        lines = text.splitlines(keepends=True)
        pending = None
        for i, line in enumerate(lines):
            s = line.strip()
            if s.startswith("- name:") or s.startswith("name:"):
                name = s.split("name:", 1)[1].strip().strip("'\"")
                pending = name if self.is_sensitive_env(name) else None
            elif pending and s.startswith("value:") and s[len("value:"):].strip():
                indent = line[: len(line) - len(line.lstrip())]
                end = "\n" if line.endswith("\n") else ""
                lines[i] = f"{indent}value: {MASK}{end}"
                self.masked.add(f"{where}: env {pending}")
                pending = None
        return "".join(lines)

    def metadata(self, obj: dict) -> None:
        md = obj.get("metadata")
        if not isinstance(md, dict):
            return
        ann = md.get("annotations")
        if isinstance(ann, dict):
            for k in list(ann):
                v = ann[k]
                if k in _ECHO_ANNOTATIONS:
                    ann[k] = MASK
                    self.masked.add(f"annotation {k}")
                elif isinstance(v, str):
                    if self.is_sensitive_key(k.rsplit("/", 1)[-1]):
                        ann[k] = MASK
                        self.masked.add(f"annotation {k}")
                    else:
                        ann[k] = self.text(v)

    def pod_spec(self, spec: Any, owner: str) -> None:
        if not isinstance(spec, dict):
            return
        for field in ("initContainers", "containers", "ephemeralContainers"):
            for c in _l(spec.get(field)):
                if not isinstance(c, dict):
                    continue
                envs = _l(c.get("env"))
                if id(envs) in self._env_done:
                    envs = []
                elif envs:
                    self._env_done[id(envs)] = envs
                for env in envs:
                    if not isinstance(env, dict) or not isinstance(env.get("value"), str):
                        continue
                    name = str(env.get("name", ""))
                    if self.is_sensitive_env(name):
                        env["value"] = MASK
                        self.masked.add(f"env {name}")
                    else:
                        env["value"] = self.text(env["value"])
                for fld in ("command", "args"):
                    vals = c.get(fld)
                    if isinstance(vals, list):
                        c[fld] = self.argv(vals, str(c.get("name", "")))

    def argv(self, vals: list, container: str) -> list:
        """Command and args: secrets inside each argument, and the argument after a secret flag."""
        out = []
        prev = None
        for v in vals:
            if v.__class__ is str or isinstance(v, str):
                if prev is not None and _secret_flag(prev) and not v.startswith("-"):
                    out.append(MASK)
                    self.masked.add(f"container {container}: argument after {prev}")
                else:
                    out.append(_masked_text(v) if v else v)
                prev = v
            else:
                out.append(v)
                prev = None
        return out

    def deep(self, data: Any, where: str) -> Any:
        """Any JSON document (Google bodies, error bodies): values of sensitive keys masked, every
        other string through ``text``. Iterative, so no body is too deep to walk."""
        stack = [data]
        while stack:
            cur = stack.pop()
            if isinstance(cur, dict):
                for k, v in cur.items():
                    if isinstance(v, str):
                        if self.is_sensitive_key(k) and v:
                            cur[k] = MASK
                            self.masked.add(f"{where}: {k}")
                        else:
                            cur[k] = self.text(v)
                    elif isinstance(v, (dict, list)):
                        stack.append(v)
            elif isinstance(cur, list):
                for i, v in enumerate(cur):
                    if isinstance(v, str):
                        cur[i] = self.text(v)
                    elif isinstance(v, (dict, list)):
                        stack.append(v)
        return data

    def workload(self, obj: dict) -> dict:
        """Pods, Deployments, StatefulSets, Jobs: env values, args, annotations."""
        self.metadata(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return obj
        if "containers" in spec:
            self.pod_spec(spec, "pod")
        tpl = spec.get("template") or _d(_d(spec.get("jobTemplate")).get("spec")).get("template")
        if isinstance(tpl, dict):
            self.metadata(tpl)
            self.pod_spec(tpl.get("spec"), "template")
        return obj

    # --- whole entries ----------------------------------------------------------------------
    def body(self, path: str, data: Any) -> Any:
        """Redact the body read from ``path`` (a snapshot-v1 path without extension)."""
        if isinstance(data, str):
            return self.log(data)
        if isinstance(data, list) or (isinstance(data, dict) and (path.startswith("gcp/") or "error" in data
                                                                 or data.get("kind") == "Status")):
            return self.deep(data, path)   # Google bodies and error bodies: any field can hold a secret
        if not isinstance(data, dict):
            return data
        items = data.get("items") if isinstance(data.get("items"), list) else None
        objs = items if items is not None else [data]
        if path.endswith("/configmaps"):
            for o in objs:
                if isinstance(o, dict):
                    self.configmap(o)
        elif path.endswith(("/pods", "/deployments", "/statefulsets", "/jobs", "/cronjobs", "/daemonsets",
                            "/replicasets")):
            for o in objs:
                if isinstance(o, dict):
                    self.workload(o)
        elif path.startswith("k8s/"):
            for o in objs:
                if isinstance(o, dict):
                    self.metadata(o)
                    if o.get("kind") == "Event" or "involvedObject" in o:
                        if isinstance(o.get("message"), str):
                            o["message"] = self.text(o["message"])
        return data

    def log(self, text: str) -> str:
        return self.text(text)
