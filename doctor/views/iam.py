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


def role_grants(role: str, permission: str) -> bool | None:
    """True/False for a known role; None for a custom or unknown role (cannot tell offline)."""
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


def evaluate(permission: str, members: set[str], policies: list[tuple[str, dict | None, str | None]],
             project_roles_of_member: set[str] | None = None, project_id: str | None = None) -> Evaluation:
    """Does any of ``members`` hold ``permission`` through the given policies?

    ``policies``: (where, policy body or None, why unreadable or None).
    ``project_roles_of_member``: the members' roles on the project, used for the GCS legacy
    convenience members ``projectOwner:<p>`` / ``projectEditor:<p>`` / ``projectViewer:<p>``.
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
            else:
                ev.doubts.append(f"{role} on {where} is granted to {who}; group membership cannot be read")
                for grp in sorted(groups):
                    ev.groups.append((grp, role, where))
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
