"""The Entra ID directory behind the fake ARM: who exists, as what, and since when.

ARM consults the directory when a role assignment is written (the principal must exist, and
its type must match `principalType`), Microsoft Graph (`graph.py`) answers lookups from it,
and a new user-assigned identity adds its service principal here. A directory object is
replicated to every Entra replica only some time after it was made: `replicated(obj, delay)`
says whether a reader that is not the writer (ARM's role-assignment check) sees it yet, which
is the real cause of PrincipalNotFound on a brand-new identity.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

KINDS = ("User", "ServicePrincipal", "Group")
ODATA_TYPES = {
    "User": "#microsoft.graph.user",
    "ServicePrincipal": "#microsoft.graph.servicePrincipal",
    "Group": "#microsoft.graph.group",
}


@dataclass
class DirectoryObject:
    """A user, service principal or group: what Graph shows and ARM checks."""

    object_id: str
    kind: str  # User | ServicePrincipal | Group (ARM's principalType values)
    display_name: str
    upn: str | None = None  # users only
    app_id: str | None = None  # service principals: the application (client) id
    created: float = field(default_factory=time.monotonic)

    def graph(self) -> dict[str, object]:
        """The object as Graph v1.0 shows it (the default $select of its collection)."""
        body: dict[str, object] = {"id": self.object_id, "displayName": self.display_name}
        if self.kind == "User":
            upn = self.upn or f"{self.object_id}@fake.onmicrosoft.com"
            body.update({
                "userPrincipalName": upn, "mail": upn, "givenName": None, "surname": None,
                "jobTitle": None, "businessPhones": [], "mobilePhone": None,
                "officeLocation": None, "preferredLanguage": None,
            })
        elif self.kind == "ServicePrincipal":
            body.update({
                "appId": self.app_id, "appDisplayName": self.display_name,
                "servicePrincipalType": "ManagedIdentity" if self.app_id else "Application",
                "accountEnabled": True,
            })
        else:
            body.update({"securityEnabled": True, "mailEnabled": False, "groupTypes": []})
        return body


class Directory:
    """Directory objects by object id; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, DirectoryObject] = {}

    def add(
        self, object_id: str, *, kind: str = "User", upn: str | None = None,
        display_name: str | None = None, app_id: str | None = None,
        created: float | None = None,
    ) -> DirectoryObject:
        if kind not in KINDS:
            raise ValueError(f"kind is one of {', '.join(KINDS)}, not {kind!r}")
        obj = DirectoryObject(
            object_id.lower(), kind, display_name or upn or object_id, upn, app_id,
            time.monotonic() if created is None else created,
        )
        with self._lock:
            self._objects[obj.object_id] = obj
        return obj

    def remove(self, object_id: str) -> DirectoryObject | None:
        with self._lock:
            return self._objects.pop(object_id.lower(), None)

    def get(self, object_id: str) -> DirectoryObject | None:
        with self._lock:
            return self._objects.get(object_id.lower())

    def find(self, id_or_upn: str) -> DirectoryObject | None:
        """By object id, else by user principal name (any case), as `/users/{x}` resolves."""
        found = self.get(id_or_upn)
        if found is not None:
            return found
        wanted = id_or_upn.lower()
        with self._lock:
            for obj in self._objects.values():
                if obj.upn and obj.upn.lower() == wanted:
                    return obj
        return None

    def by_app_id(self, app_id: str) -> DirectoryObject | None:
        wanted = app_id.lower()
        with self._lock:
            for obj in self._objects.values():
                if obj.app_id and obj.app_id.lower() == wanted:
                    return obj
        return None

    @staticmethod
    def replicated(obj: DirectoryObject, delay: float) -> bool:
        """Whether a reader other than the writer sees `obj` yet (`delay` s after creation)."""
        return time.monotonic() - obj.created >= delay
