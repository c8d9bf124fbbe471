"""Who a token says you are: its claims, read without checking the signature.

Doctor only reports identity (the service that receives the token checks the signature);
reading the claims locally is what tells a person "you are signed in as the CI app, not as
yourself", the commonest surprise with DefaultAzureCredential.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" or "application"
    name: str  # a UPN for a person, the application (client) id for an app
    object_id: str
    tenant_id: str

    def describe(self) -> str:
        return (f"{self.kind} {self.name} (object id {self.object_id or '?'}, "
                f"tenant {self.tenant_id or '?'})")

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "object_id": self.object_id,
                "tenant_id": self.tenant_id}


def claims(token: str) -> dict[str, Any]:
    """The payload of a JWT; {} when it is not one."""
    parts = token.split(".")
    if len(parts) < 2:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def principal(token: str) -> Principal:
    """A person (upn / unique_name / preferred_username) or an application (appid / azp)."""
    found = claims(token)
    user = found.get("upn") or found.get("unique_name") or found.get("preferred_username")
    app = found.get("appid") or found.get("azp") or ""
    is_app = found.get("idtyp") == "app" or not user
    return Principal("application" if is_app else "user", str(app if is_app else user) or "?",
                     str(found.get("oid") or ""), str(found.get("tid") or ""))
