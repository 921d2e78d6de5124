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
    for where, policy, unreadable in policies:
        if policy is None:
            if unreadable:
                ev.doubts.append(f"could not read the IAM policy of {where}: {unreadable}")
            continue
        for b in bindings(policy):
            role = str(b.get("role") or "")
            mem = binding_members(b)
            direct = mem & members
            conv = mem & convenience
            public = mem & {"allUsers", "allAuthenticatedUsers"}
            groups = {m for m in mem if m.startswith(("group:", "domain:", "principalSet:"))}
            if not (direct or conv or public or groups):
                continue
            g = role_grants(role, permission)
            cond = " (with an IAM condition)" if b.get("condition") else ""
            who = ", ".join(sorted(direct | conv | public)) or ", ".join(sorted(groups))
            if g is None:
                if direct or conv or public:
                    ev.doubts.append(f"{who} holds custom role {role} on {where}{cond}; its permissions were not read")
                continue
            if not g:
                continue
            if direct or conv or public:
                ev.grants.append(f"{role} on {where} to {who}{cond}")
            else:
                ev.doubts.append(f"{role} on {where} is granted to {who}; group membership cannot be read")
    if ev.grants:
        ev.verdict = "granted"
    elif ev.doubts:
        ev.verdict = "unknown"
    return ev


def member_roles(policy: dict | None, members: set[str]) -> set[str]:
    return {str(b.get("role")) for b in bindings(policy) if members & binding_members(b)}
