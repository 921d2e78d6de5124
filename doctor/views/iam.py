"""IAM policies as the doctor reads them: which members a policy grants a permission to.

The doctor reads allow policies of the project and the bucket; it cannot see folder or
organization policies, group membership, deny policies or conditions' outcomes. So an answer
is ``granted`` (a binding proves it), ``denied`` (every relevant policy was read and none grants
it) or ``unknown`` (something that could grant it could not be evaluated).
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Predefined roles that carry the storage permissions the doctor asks about.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "roles/owner": frozenset({"storage.objects.create", "storage.objects.get", "storage.objects.delete",
                              "storage.objects.list", "storage.buckets.get"}),
    "roles/editor": frozenset({"storage.objects.create", "storage.objects.get", "storage.objects.delete",
                               "storage.objects.list", "storage.buckets.get"}),
    "roles/viewer": frozenset({"storage.objects.list", "storage.buckets.get"}),
    "roles/storage.admin": frozenset({"storage.objects.create", "storage.objects.get", "storage.objects.delete",
                                      "storage.objects.list", "storage.buckets.get"}),
    "roles/storage.objectAdmin": frozenset({"storage.objects.create", "storage.objects.get",
                                            "storage.objects.delete", "storage.objects.list"}),
    "roles/storage.objectUser": frozenset({"storage.objects.create", "storage.objects.get",
                                           "storage.objects.delete", "storage.objects.list"}),
    "roles/storage.objectCreator": frozenset({"storage.objects.create"}),
    "roles/storage.objectViewer": frozenset({"storage.objects.get", "storage.objects.list"}),
    "roles/storage.legacyBucketOwner": frozenset({"storage.objects.create", "storage.objects.delete",
                                                  "storage.objects.list", "storage.buckets.get"}),
    "roles/storage.legacyBucketWriter": frozenset({"storage.objects.create", "storage.objects.delete",
                                                   "storage.objects.list"}),
    "roles/storage.legacyBucketReader": frozenset({"storage.objects.list", "storage.buckets.get"}),
    "roles/storage.legacyObjectOwner": frozenset({"storage.objects.get"}),
    "roles/storage.legacyObjectReader": frozenset({"storage.objects.get"}),
}


# Predefined roles that carry secretmanager.versions.access (reading a secret's payload). Editor and
# Viewer do not; of the Secret Manager roles only the accessor and the admin do.
SECRET_ACCESS_ROLES = frozenset({"roles/owner", "roles/secretmanager.admin", "roles/secretmanager.secretAccessor"})
_SECRET_MANAGER_NO_ACCESS = frozenset({"roles/secretmanager.viewer", "roles/secretmanager.secretVersionAdder",
                                       "roles/secretmanager.secretVersionManager"})


def role_grants(role: str, permission: str) -> bool | None:
    """True/False for a known role; None for a custom or unknown role (cannot tell offline)."""
    if permission == "secretmanager.versions.access":
        if role in SECRET_ACCESS_ROLES:
            return True
        if role in _SECRET_MANAGER_NO_ACCESS or role in ("roles/editor", "roles/viewer"):
            return False
        if role.startswith("roles/secretmanager."):
            return None
        return False if role.startswith("roles/") else None
    perms = ROLE_PERMISSIONS.get(role)
    if perms is not None:
        return permission in perms
    if role.startswith("roles/") and not role.startswith("roles/storage."):
        # Predefined non-storage roles do not carry storage.objects.* (basic roles are listed above).
        return False
    return None


@dataclass
class Evaluation:
    verdict: str                      # "granted" | "denied" | "unknown"
    grants: list[str] = field(default_factory=list)    # "roles/x on bucket gs://b"
    doubts: list[str] = field(default_factory=list)    # why the answer is unknown
    # (group member, role, where): a group binding that grants the permission; the only doubt
    # when every policy was read and no custom role is involved
    groups: list[tuple[str, str, str]] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)     # policies that could not be read
    custom: list[str] = field(default_factory=list)     # custom roles held whose permissions were not read
    lacking: list[str] = field(default_factory=list)    # roles held that visibly lack the permission
    no_groups: str | None = None      # why group bindings cannot reach the members (federated principals)
    # what Cloud Identity answered about group membership: "sa@p is in group g@x" / "... is not in ..."
    answered: list[str] = field(default_factory=list)
    # groups whose membership stayed unknown because the optional read failed or was not made
    unasked: list[str] = field(default_factory=list)

    @property
    def only_groups(self) -> bool:
        """Every policy was read and nothing but group membership is unknown."""
        return self.verdict == "unknown" and bool(self.groups) and not self.unread and not self.custom


def is_federated(member: str) -> bool:
    """A Workload Identity Federation principal: ``principal://...workloadIdentityPools/...`` or the
    legacy ``serviceAccount:PROJECT.svc.id.goog[NS/KSA]`` form of a Kubernetes service account."""
    return member.startswith("principal://") or (member.startswith("serviceAccount:") and ".svc.id.goog[" in member)


# The IAM principals overview describes a Google group as a collection of Google Accounts and service
# accounts (and other groups); a federated workload identity is neither and has no email address to
# add, and Policy Troubleshooter answers MEMBERSHIP_UNKNOWN_UNSUPPORTED for it. So group bindings do
# not reach a KSA that acts as its own federated principal.
FEDERATED_NOT_IN_GROUPS = ("a Workload Identity federated principal (a KSA without a Google service account) "
                           "cannot be a member of a Google group, so group bindings do not reach it")


def _in_principal_set(member_set: str, members: set[str]) -> bool | None:
    """Whether a ``principalSet://`` of a workload identity pool (``/namespace/NS``, ``/*``) holds one
    of the members; None for other principal sets."""
    if "/workloadIdentityPools/" not in member_set:
        return None
    for m in members:
        if not m.startswith("principal://") or "/subject/ns/" not in m:
            continue
        pool, _, subject = m[len("principal://"):].partition("/subject/")
        set_pool, _, rest = member_set[len("principalSet://"):].partition("/namespace/")
        if rest and set_pool == pool and subject.startswith(f"ns/{rest}/sa/"):
            return True
        if member_set[len("principalSet://"):] in (f"{pool}/*",):
            return True
    return False


def _rolename_perms(role: str) -> str:
    perms = ROLE_PERMISSIONS.get(role)
    return ", ".join(sorted(perms)) if perms else "no storage permission"


def bindings(policy: dict | None) -> list[dict]:
    if not isinstance(policy, dict):
        return []
    found = policy.get("bindings")
    return [b for b in found if isinstance(b, dict)] if isinstance(found, list) else []


def binding_members(b: dict) -> set[str]:
    """The member strings of a binding (anything else a malformed policy holds is ignored)."""
    found = b.get("members")
    return {m for m in found if isinstance(m, str)} if isinstance(found, list) else set()


# The optional read that settles a group caveat, and what grants it.
MEMBERSHIP_READ = ("Cloud Identity groups.memberships.checkTransitiveMembership (permission "
                   "cloudidentity.groups.memberships.checkTransitiveMembership, e.g. the Groups Reader admin role)")


def evaluate(permission: str, members: set[str], policies: list[tuple[str, dict | None, str | None]],
             project_roles_of_member: set[str] | None = None, project_id: str | None = None,
             membership=None) -> Evaluation:
    """Does any of ``members`` hold ``permission`` through the given policies?

    ``policies``: (where, policy body or None, why unreadable or None).
    ``project_roles_of_member``: the members' roles on the project, used for the GCS legacy
    convenience members ``projectOwner:<p>`` / ``projectEditor:<p>`` / ``projectViewer:<p>``.
    ``membership``: (group email, member email) -> True / False / None (not known), the optional
    Cloud Identity answer (:func:`membership_of`); a group it answers for is no longer a doubt.
    """
    ev = Evaluation("denied")
    convenience = set()
    roles = project_roles_of_member or set()
    if project_id:
        if "roles/owner" in roles:
            convenience.add(f"projectOwner:{project_id}")
        if "roles/editor" in roles:
            convenience.add(f"projectEditor:{project_id}")
        if "roles/viewer" in roles:
            convenience.add(f"projectViewer:{project_id}")
    federated = bool(members) and all(is_federated(m) for m in members)
    pending: list[tuple] = []   # group bindings that grant it: (role, where, cond, groups, their doubt)
    for where, policy, unreadable in policies:
        if policy is None:
            if unreadable:
                ev.doubts.append(f"could not read the IAM policy of {where}: {unreadable}")
                ev.unread.append(where)
            continue
        for b in bindings(policy):
            role = str(b.get("role") or "")
            mem = binding_members(b)
            direct = mem & members
            direct |= {m for m in mem if m.startswith("principalSet:") and _in_principal_set(m, members)}
            conv = mem & convenience
            public = mem & {"allUsers", "allAuthenticatedUsers"}
            groups = {m for m in mem if m.startswith(("group:", "domain:"))
                      or (m.startswith("principalSet:") and _in_principal_set(m, members) is None)}
            if members and all(m.startswith("serviceAccount:") for m in members):
                groups = {m for m in groups if not m.startswith("domain:")}   # a domain holds user accounts only
            if federated and groups:
                g0 = role_grants(role, permission)
                if g0 and not (direct or conv or public):
                    ev.no_groups = FEDERATED_NOT_IN_GROUPS
                groups = {m for m in groups if m.startswith("principalSet:")}
            if not (direct or conv or public or groups):
                continue
            g = role_grants(role, permission)
            cond = " (with an IAM condition)" if b.get("condition") else ""
            who = ", ".join(sorted(direct | conv | public)) or ", ".join(sorted(groups))
            if g is None:
                if direct or conv or public:
                    ev.doubts.append(f"{who} holds custom role {role} on {where}{cond}; its permissions were not read")
                    ev.custom.append(f"{role} on {where}")
                continue
            if not g:
                if (direct or conv) and (role in ROLE_PERMISSIONS or role.startswith("roles/storage.")):
                    ev.lacking.append(f"{who} holds {role} on {where}, which has {_rolename_perms(role)} but not "
                                      f"{permission}")
                continue
            if direct or conv or public:
                ev.grants.append(f"{role} on {where} to {who}{cond}")
                continue
            doubt = f"{role} on {where} is granted to {who}; group membership cannot be read"
            ev.doubts.append(doubt)
            for grp in sorted(groups):
                ev.groups.append((grp, role, where))
            pending.append((role, where, cond, set(groups), doubt))
    if membership is not None and pending and not ev.grants:
        # asked only when no binding grants it outright: the answer can change nothing else
        emails = [m.split(":", 1)[1] for m in sorted(members) if m.startswith(("serviceAccount:", "user:"))]
        for role, where, cond, groups, doubt in pending:
            before = set(groups)
            for grp in sorted(before):
                if not grp.startswith("group:") or not emails:
                    continue
                gname = grp.split(":", 1)[1]
                said = {e: membership(gname, e) for e in emails}
                inside = [e for e, v in said.items() if v is True]
                if inside:
                    ev.grants.append(f"{role} on {where} to {grp}{cond} (Cloud Identity answered: "
                                     f"{inside[0]} is in group {gname})")
                    ev.answered.append(f"{inside[0]} is in group {gname}")
                    groups.discard(grp)
                elif all(v is False for v in said.values()):
                    note = f"{', '.join(emails)} {'is' if len(emails) == 1 else 'are'} not in group {gname}"
                    if note not in ev.answered:
                        ev.answered.append(note)
                    groups.discard(grp)
                elif gname not in ev.unasked:
                    ev.unasked.append(gname)
            if groups != before:   # answered: the doubt shrinks to the groups still unknown, or goes
                i = ev.doubts.index(doubt)
                if groups:
                    ev.doubts[i] = f"{role} on {where} is granted to {', '.join(sorted(groups))}; " \
                                   "group membership cannot be read"
                else:
                    del ev.doubts[i]
                ev.groups = [t for t in ev.groups if not (t[1] == role and t[2] == where and t[0] in before - groups)]
    if ev.grants:
        ev.verdict = "granted"
    elif ev.doubts:
        ev.verdict = "unknown"
    return ev


def unless_in_groups(ev: Evaluation, member: str) -> tuple[str, list[str]]:
    """The caveat of an answer that only group membership could change, and the one command per
    group that settles it: ("unless sa@p is in group data-eng@x.example", [gcloud ...])."""
    email = member.split(":", 1)[1] if ":" in member else member
    groups = list(dict.fromkeys(g for g, _r, _w in ev.groups))
    names = [g.split(":", 1)[1] if ":" in g else g for g in groups]
    text = f"unless {email} is in " + " or ".join(f"group {n}" for n in names)
    cmds = [f"gcloud identity groups memberships check-transitive-membership --group-email={n} --member-email={email}"
            for g, n in zip(groups, names) if g.startswith("group:")]
    return text, cmds


def member_roles(policy: dict | None, members: set[str]) -> set[str]:
    return {str(b.get("role")) for b in bindings(policy) if members & binding_members(b)}


def membership_of(ctx):
    """The optional Cloud Identity answers of a run, as ``membership`` for :func:`evaluate`:
    (group email, member email) -> True / False, or None when the read was not made or failed."""
    def ask(group: str, member: str) -> bool | None:
        e = ctx.entry("group_membership", group=group, member=member)
        if e is None or not e.ok or not isinstance(e.data, dict):
            return None
        has = e.data.get("hasMembership")
        return has if isinstance(has, bool) else None
    return ask


def storage_groups(policy: dict | None, permissions: tuple[str, ...]) -> list[str]:
    """Emails of the Google groups a policy grants one of the permissions to (by a known role)."""
    out: list[str] = []
    for b in bindings(policy):
        if not any(role_grants(str(b.get("role") or ""), p) for p in permissions):
            continue
        for m in sorted(binding_members(b)):
            if m.startswith("group:") and m[6:] not in out:
                out.append(m[6:])
    return out


def membership_lines(ev: Evaluation, who: str) -> list[str]:
    """Evidence about group membership: which read answered, or which optional read would settle
    the caveat that stays."""
    out = [f"{who}: Cloud Identity (groups.memberships.checkTransitiveMembership) answered: {a}" for a in ev.answered]
    if ev.only_groups:
        out.append(f"{who}: group membership was not answered (the optional read was denied or not made); "
                   f"{MEMBERSHIP_READ} for the identity running the doctor would settle it")
    return out
