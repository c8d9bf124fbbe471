"""Microsoft.Authorization for the fake ARM: role assignments at any scope, built-in role
definitions, and the Entra checks ARM makes when an assignment is written.

Role assignments are extension resources: `{scope}/providers/Microsoft.Authorization/
roleAssignments/{name}` where the scope is a subscription, a resource group, a resource or a
sub-resource (`.../blobServices/default/containers/<c>`); a scope naming a resource that does
not exist gets ARM's 404 (the server checks the parent). Writing one needs
`Microsoft.Authorization/roleAssignments/write` over the scope (Owner, User Access
Administrator, Role Based Access Control Administrator; not Contributor).

- `PUT` (201): the name must be a GUID (400 InvalidRoleAssignmentId); the role definition must
  be a built-in one (400 RoleDefinitionDoesNotExist); the principal must be in the directory:
  400 PrincipalNotFound when it is not, and also when it was created less than
  `arm.replication_delay` ago and `principalType` is not given (ARM looks the principal up in
  a replica that has not seen it yet; with `principalType` set it skips that lookup). A
  `principalType` that contradicts the directory gets 400 UnmatchedPrincipalType. The same
  scope, role and principal under another name: 409 RoleAssignmentExists naming the existing
  one; the same name with other properties: 400 RoleAssignmentUpdateNotPermitted; the same
  name with the same properties: 201 again.
- An assignment made here is RBAC for the fake (as `arm.grant`), but in force only
  `arm.role_propagation_delay` seconds after creation: until then the principal still gets
  403 AuthorizationFailed, and `arm.effective_roles` leaves it out.
- `GET` (404 RoleAssignmentNotFound), `DELETE` (200 with the assignment, 204 when absent),
  `GET .../roleAssignments` with `$filter` `atScope()`, `principalId eq '<id>'`,
  `assignedTo('<id>')` (combinable with `and`); without a filter: at, above and below.
- `GET .../roleDefinitions/{id}` and `GET .../roleDefinitions?$filter=roleName eq '<name>'`
  for the built-ins of `rbac.py`.

Texts: PrincipalNotFound, UnmatchedPrincipalType (the service's own typo "PrinciaplType"
included) and RoleAssignmentExists ("The ID of the existing role assignment is <32 hex>") as
quoted in GitHub issues of azd, Azure samples and bicep users; status codes from
azure-mgmt-authorization 4.0 (api 2022-04-01: PUT 201, DELETE 200/204).
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from . import errors, rbac, validation
from .rbac import RoleAssignment, RoleDefinition, normalize_scope, scope_covers
from .routing import ArmRequest, ArmResponse, Provider, Route

NAMESPACE = "Microsoft.Authorization"
SDK_PACKAGE = "azure.mgmt.authorization"
ASSIGNMENT_TYPE = f"{NAMESPACE}/roleAssignments"
ROLE_ASSIGNMENT_API_VERSIONS = (
    "2014-04-01-preview", "2014-07-01-preview", "2014-10-01-preview", "2015-05-01-preview",
    "2015-06-01", "2015-07-01", "2016-07-01", "2017-05-01", "2017-09-01",
    "2017-10-01-preview", "2018-01-01-preview", "2018-07-01", "2018-09-01-preview",
    "2018-12-01-preview", "2019-04-01-preview", "2020-03-01-preview", "2020-04-01-preview",
    "2020-08-01-preview", "2020-10-01-preview", "2021-04-01-preview", "2022-01-01-preview",
    "2022-04-01", "2022-05-01-preview", "2022-08-01-preview",
)
ROLE_DEFINITION_API_VERSIONS = (
    "2014-04-01-preview", "2015-06-01", "2015-07-01", "2017-05-01", "2018-01-01-preview",
    "2022-04-01", "2022-05-01-preview",
)
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_FILTER_PRINCIPAL = re.compile(r"principalId\s+eq\s+'([^']*)'", re.IGNORECASE)
_FILTER_ASSIGNED = re.compile(r"assignedTo\('([^']*)'\)", re.IGNORECASE)
_FILTER_ROLE_NAME = re.compile(r"roleName\s+eq\s+'([^']*)'", re.IGNORECASE)
_FILTER_TYPE = re.compile(r"type\s+eq\s+'([^']*)'", re.IGNORECASE)


class Authorization(Provider):
    namespace = NAMESPACE
    api_versions = {
        "roleAssignments": ROLE_ASSIGNMENT_API_VERSIONS,
        "roleDefinitions": ROLE_DEFINITION_API_VERSIONS,
    }

    def routes(self) -> list[Route]:
        return [
            Route("GET", "roleAssignments", self.list_assignments),
            Route("GET", "roleAssignments/{roleAssignmentName}", self.get_assignment),
            Route("PUT", "roleAssignments/{roleAssignmentName}", self.put_assignment),
            Route("DELETE", "roleAssignments/{roleAssignmentName}", self.delete_assignment),
            Route("GET", "roleDefinitions", self.list_definitions),
            Route("GET", "roleDefinitions/{roleDefinitionId}", self.get_definition),
        ]

    # ---- role assignments ---------------------------------------------------------------------

    def put_assignment(self, request: ArmRequest) -> ArmResponse:
        scope = _scope(request.path)
        name = request.params["roleAssignmentName"]
        if not _GUID.match(name):
            raise errors.ArmError(
                400, "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be "
                "a GUID.",
            )
        models = validation.models_for(SDK_PACKAGE, request.api_version,
                                       "RoleAssignmentCreateParameters")
        body = validation.validate_body(models, "RoleAssignmentCreateParameters", request.json())
        definition = _definition(body.role_definition_id)
        principal_id = str(body.principal_id).lower()
        principal_type = getattr(body, "principal_type", None)
        if principal_type is not None and principal_type not in PRINCIPAL_TYPES:
            raise errors.ArmError(
                400, "InvalidPrincipalType",
                f"The principal type '{principal_type}' is not valid. Valid values are "
                f"{', '.join(PRINCIPAL_TYPES)}.",
            )
        existing = self.arm.rbac.named(scope, name)
        if existing is not None:
            if existing.principal != principal_id or existing.role != definition:
                raise errors.ArmError(
                    400, "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be "
                    "updated.",
                )
            return self._answer(request, existing, 201)
        kind = self._check_principal(request, principal_id, principal_type)
        for other in self.arm.rbac.assignments:
            if (
                other.principal == principal_id and other.role == definition
                and other.scope.lower() == scope.lower()
            ):
                raise errors.ArmError(
                    409, "RoleAssignmentExists",
                    "The role assignment already exists. The ID of the existing role assignment "
                    f"is {_assignment_name(other).replace('-', '')}.",
                )
        assignment = self.arm.rbac.add(RoleAssignment(
            principal_id, definition, scope, name=name.lower(),
            principal_type=principal_type or kind, description=getattr(body, "description", None),
            created_by=request.principal.object_id,
            effective_at=time.monotonic() + self.arm.role_propagation_delay,
        ))
        return self._answer(request, assignment, 201)

    def get_assignment(self, request: ArmRequest) -> ArmResponse:
        return self._answer(request, self._assignment(request), 200)

    def delete_assignment(self, request: ArmRequest) -> ArmResponse:
        scope, name = _scope(request.path), request.params["roleAssignmentName"]
        assignment = self._find(scope, name)
        if assignment is None:
            return ArmResponse(204, None)
        self.arm.rbac.remove(assignment)
        return self._answer(request, assignment, 200)

    def list_assignments(self, request: ArmRequest) -> ArmResponse:
        scope = _scope(request.path)
        text = request.query.get("$filter", "").strip()
        at_scope = "atscope()" in text.lower()
        principal = _FILTER_PRINCIPAL.search(text) or _FILTER_ASSIGNED.search(text)
        leftover = _FILTER_PRINCIPAL.sub("", _FILTER_ASSIGNED.sub("", text))
        leftover = re.sub(r"atScope\(\)|\band\b", "", leftover, flags=re.IGNORECASE).strip()
        if leftover:
            raise errors.ArmError(
                400, "UnsupportedQuery", f"The filter '{text}' is not supported.",
            )
        wanted = principal.group(1).lower() if principal else None
        found = []
        for assignment in self.arm.rbac.assignments:
            above = scope_covers(assignment.scope, scope)
            below = scope_covers(scope, assignment.scope)
            if at_scope and not above:
                continue
            if not (above or below):
                continue
            if wanted is not None and assignment.principal != wanted:
                continue
            found.append(self._render(request, assignment))
        return ArmResponse(200, {"value": found})

    # ---- role definitions ---------------------------------------------------------------------

    def get_definition(self, request: ArmRequest) -> ArmResponse:
        wanted = request.params["roleDefinitionId"].lower()
        for definition in rbac.BUILTIN_ROLES.values():
            if definition.id == wanted:
                return ArmResponse(200, self._render_definition(request, definition))
        raise errors.ArmError(
            404, "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{request.params['roleDefinitionId']}' "
            "does not exist.",
        )

    def list_definitions(self, request: ArmRequest) -> ArmResponse:
        text = request.query.get("$filter", "")
        by_name = _FILTER_ROLE_NAME.search(text)
        by_type = _FILTER_TYPE.search(text)
        found = [
            d for d in rbac.BUILTIN_ROLES.values()
            if (by_name is None or d.name.lower() == by_name.group(1).lower())
            and (by_type is None or by_type.group(1).lower() == "builtinrole")
        ]
        return ArmResponse(200, {"value": [self._render_definition(request, d) for d in found]})

    # ---- helpers ------------------------------------------------------------------------------

    def _check_principal(
        self, request: ArmRequest, principal_id: str, principal_type: str | None
    ) -> str | None:
        """ARM's directory checks; the principal's kind when known."""
        found = self.arm.directory.get(principal_id)
        tenant = request.subscription.tenant_id or request.principal.tenant_id
        visible = found is not None and self.arm.directory.replicated(
            found, self.arm.replication_delay
        )
        if found is None or (not visible and principal_type is None):
            raise errors.ArmError(
                400, "PrincipalNotFound",
                f"Principal {principal_id.replace('-', '')} does not exist in the directory "
                f"{tenant}. Check that you have the correct principal ID. If you are creating "
                "this principal and then immediately assigning a role, this error might be "
                "related to a replication delay. In this case, set the role assignment "
                "principalType property to a value, such as ServicePrincipal, User, or Group.  "
                "See https://aka.ms/docs-principaltype",
            )
        if visible and principal_type is not None and principal_type != found.kind:
            raise errors.ArmError(
                400, "UnmatchedPrincipalType",
                f"The PrincipalId '{principal_id.replace('-', '')}' has type '{found.kind}' , "
                f"which is different from specified PrinciaplType '{principal_type}'.",
            )
        return found.kind

    def _assignment(self, request: ArmRequest) -> RoleAssignment:
        name = request.params["roleAssignmentName"]
        found = self._find(_scope(request.path), name)
        if found is None:
            raise errors.ArmError(
                404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found."
            )
        return found

    def _find(self, scope: str, name: str) -> RoleAssignment | None:
        for assignment in self.arm.rbac.assignments:
            if (
                assignment.scope.lower() == normalize_scope(scope).lower()
                and _assignment_name(assignment) == name.lower()
            ):
                return assignment
        return None

    def _answer(self, request: ArmRequest, assignment: RoleAssignment, status: int) -> ArmResponse:
        return ArmResponse(status, self._render(request, assignment))

    def _render(self, request: ArmRequest, assignment: RoleAssignment) -> dict[str, Any]:
        name = _assignment_name(assignment)
        found = self.arm.directory.get(assignment.principal)
        created = assignment.created_on.isoformat().replace("+00:00", "Z")
        resource = {
            "id": f"{assignment.scope}/providers/{ASSIGNMENT_TYPE}/{name}",
            "name": name,
            "type": ASSIGNMENT_TYPE,
            "properties": {
                "roleDefinitionId": f"/subscriptions/{request.subscription.id}/providers/"
                f"{NAMESPACE}/roleDefinitions/{assignment.role.id}",
                "principalId": assignment.principal,
                "principalType": assignment.principal_type or (found.kind if found else "User"),
                "scope": assignment.scope,
                "condition": None,
                "conditionVersion": None,
                "createdOn": created,
                "updatedOn": created,
                "createdBy": assignment.created_by,
                "updatedBy": assignment.created_by,
                "delegatedManagedIdentityResourceId": None,
                "description": assignment.description,
            },
        }
        models = validation.models_for(SDK_PACKAGE, request.api_version, "RoleAssignment")
        return validation.render(models, "RoleAssignment", resource)

    def _render_definition(self, request: ArmRequest, definition: RoleDefinition) -> dict:
        models = validation.models_for(SDK_PACKAGE, request.api_version, "RoleDefinition")
        scope = _scope(request.path)
        return validation.render(models, "RoleDefinition", definition.resource(scope))


def _assignment_name(assignment: RoleAssignment) -> str:
    """An API-made assignment's own name; `grant`s get a stable one of their own."""
    if assignment.name:
        return assignment.name
    key = f"{assignment.scope.lower()}|{assignment.role.id}|{assignment.principal}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def _definition(role_definition_id: str) -> RoleDefinition:
    tail = role_definition_id.rstrip("/").rsplit("/", 1)[-1]
    shaped = re.fullmatch(
        r"(/subscriptions/[^/]+)?/providers/Microsoft\.Authorization/roleDefinitions/[^/]+",
        role_definition_id.rstrip("/"), re.IGNORECASE,
    )
    if shaped and _GUID.match(tail):
        for definition in rbac.BUILTIN_ROLES.values():
            if definition.id == tail.lower():
                return definition
    raise errors.ArmError(
        400, "RoleDefinitionDoesNotExist",
        f"The specified role definition with ID '{tail}' does not exist.",
    )


def _scope(path: str) -> str:
    """The scope of a `.../providers/Microsoft.Authorization/...` request path."""
    segments = path.strip("/").split("/")
    for i in range(len(segments) - 2, -1, -1):
        if segments[i].lower() == "providers" and segments[i + 1].lower() == NAMESPACE.lower():
            return normalize_scope("/".join(segments[:i]))
    return normalize_scope(path)
