"""Microsoft.ContainerService for the fake ARM: AKS managed clusters, as far as aksrun's admin
commands, `init` and `doctor` use them.

- `GET managedClusters/{name}` (and the lists by resource group and subscription): the
  cluster as api 2026-08-01 shows it (azure-mgmt-containerservice 41's TypeSpec models), with
  `oidcIssuerProfile` {enabled, issuerURL}, `securityProfile.workloadIdentity.enabled`,
  `identityProfile.kubeletidentity` {clientId, objectId, resourceId}, `aadProfile` {managed,
  enableAzureRBAC, tenantID}, `kubernetesVersion`, `disableLocalAccounts`, `eTag`.
- `PUT managedClusters/{name}` is a long-running operation as AKS runs it: 200 (update) or 201
  (create) with the resource in provisioningState Updating / Creating and an
  `Azure-AsyncOperation` header to `.../providers/Microsoft.ContainerService/locations/
  {location}/operations/{id}?api-version=2016-03-30` (the URL shape AKS answers, seen in the
  Azure SDK for .NET's test base), whose document goes InProgress -> Succeeded after
  `arm.operation_delay`; the cluster then shows Succeeded and, once the OIDC issuer is on, its
  `issuerURL` (the one given to `add_managed_cluster`).
  An update is the object a client read, changed: what `az aks update --enable-oidc-issuer
  --enable-workload-identity` sends. Changes the fake models are turning on the OIDC issuer,
  turning workload identity on or off, Azure RBAC on or off, and tags. Any other difference
  from what GET showed is refused (400) naming the fields, rather than silently dropped; so is
  what AKS itself refuses: disabling the OIDC issuer, workload identity without the OIDC
  issuer, a write while another operation runs (409 OperationNotAllowed, AKS's wording), and
  an `If-Match` that is not the current eTag (412).
- `POST .../listClusterUserCredential` / `listClusterAdminCredential` -> `{"kubeconfigs":
  [{"name": "clusterUser" | "clusterAdmin", "value": <base64>}]}` from the kubeconfigs given
  to `add_managed_cluster`; admin credentials of a cluster with local accounts disabled get
  AKS's 400.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import errors, validation
from .routing import ArmRequest, ArmResponse, Provider, Route

NAMESPACE = "Microsoft.ContainerService"
SDK_PACKAGE = "azure.mgmt.containerservice"
CLUSTER_TYPE = f"{NAMESPACE}/managedClusters"
OPERATION_API_VERSION = "2016-03-30"
# Stable managedClusters api-versions (azure-rest-api-specs containerservice/aks/stable), and
# the ones azure-mgmt-containerservice 41.8 lists (default 2026-08-01).
CLUSTER_API_VERSIONS = (
    "2017-08-31", "2018-03-31", "2019-02-01", "2019-04-01", "2019-06-01", "2019-08-01",
    "2019-10-01", "2019-11-01", "2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01",
    "2020-06-01", "2020-07-01", "2020-09-01", "2020-11-01", "2020-12-01", "2021-02-01",
    "2021-03-01", "2021-05-01", "2021-07-01", "2021-08-01", "2021-09-01", "2021-10-01",
    "2022-01-01", "2022-02-01", "2022-03-01", "2022-04-01", "2022-06-01", "2022-07-01",
    "2022-08-01", "2022-09-01", "2022-11-01", "2023-01-01", "2023-02-01", "2023-03-01",
    "2023-04-01", "2023-05-01", "2023-06-01", "2023-07-01", "2023-08-01", "2023-09-01",
    "2023-10-01", "2023-11-01", "2024-01-01", "2024-02-01", "2024-05-01", "2024-07-01",
    "2024-08-01", "2024-09-01", "2024-10-01", "2025-01-01", "2025-02-01", "2025-03-01",
    "2025-04-01", "2025-05-01", "2025-06-01", "2025-07-01", "2025-08-01", "2025-09-01",
    "2025-10-01", "2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01", "2026-05-01",
    "2026-06-01", "2026-07-01", "2026-08-01",
)
# Fields (REST paths below the resource, `*` for any key) an update may change in the fake.
MODELLED_CHANGES = (
    "tags.*",
    "properties.oidcIssuerProfile.enabled",
    "properties.securityProfile.workloadIdentity.enabled",
    "properties.aadProfile.enableAzureRBAC",
)


@dataclass
class ManagedCluster:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    tenant_id: str
    kubeconfig: bytes
    admin_kubeconfig: bytes | None
    issuer_url: str
    oidc_enabled: bool = False
    workload_identity: bool = False
    azure_rbac: bool = False
    entra: bool = False
    disable_local_accounts: bool = False
    kubernetes_version: str = "1.36.3"
    tags: dict[str, str] = field(default_factory=dict)
    provisioning_state: str = "Succeeded"
    issuer_shown: bool = False  # issuerURL appears once enabling the issuer has finished
    etag: str = field(default_factory=lambda: str(uuid.uuid4()))
    spec: dict[str, Any] = field(default_factory=dict)  # other writable properties (REST)
    kubelet_client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    kubelet_object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity_principal_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}"
            f"/providers/{CLUSTER_TYPE}/{self.name}"
        )

    @property
    def node_resource_group(self) -> str:
        return f"MC_{self.resource_group}_{self.name}_{self.location}"

    @property
    def kubelet_resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourcegroups/{self.node_resource_group}"
            f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{self.name}-agentpool"
        )

    @property
    def fqdn(self) -> str:
        digest = hashlib.sha256(self.id.lower().encode()).hexdigest()[:8]
        return f"{self.name[:40]}-dns-{digest}.hcp.{self.location}.azmk8s.io"

    def resource(self) -> dict[str, Any]:
        """The cluster as the newest api-version shows it (REST JSON)."""
        properties = copy.deepcopy(self.spec)
        properties.update({
            "provisioningState": self.provisioning_state,
            "powerState": {"code": "Running"},
            "maxAgentPools": 100,
            "kubernetesVersion": self.kubernetes_version,
            "currentKubernetesVersion": self.kubernetes_version,
            "fqdn": self.fqdn,
            "azurePortalFQDN": self.fqdn.replace(".hcp.", "-portal.hcp."),
            "nodeResourceGroup": self.node_resource_group,
            "disableLocalAccounts": self.disable_local_accounts,
            "identityProfile": {"kubeletidentity": {
                "resourceId": self.kubelet_resource_id, "clientId": self.kubelet_client_id,
                "objectId": self.kubelet_object_id,
            }},
            "oidcIssuerProfile": {"enabled": self.oidc_enabled},
            "resourceUID": hashlib.sha256(self.id.encode()).hexdigest()[:24],
        })
        if self.oidc_enabled and self.issuer_shown:
            properties["oidcIssuerProfile"]["issuerURL"] = self.issuer_url
        security = dict(properties.get("securityProfile") or {})
        if self.workload_identity:
            security["workloadIdentity"] = {"enabled": True}
        elif "workloadIdentity" in security:
            security["workloadIdentity"] = {"enabled": False}
        properties["securityProfile"] = security
        if self.entra or self.azure_rbac:
            properties["aadProfile"] = {
                "managed": True, "enableAzureRBAC": self.azure_rbac, "tenantID": self.tenant_id,
            }
        return {
            "id": self.id, "location": self.location, "name": self.name,
            "type": "Microsoft.ContainerService/ManagedClusters", "tags": dict(self.tags),
            "eTag": self.etag,
            "sku": {"name": "Base", "tier": "Free"},
            "identity": {"type": "SystemAssigned", "principalId": self.identity_principal_id,
                         "tenantId": self.tenant_id},
            "properties": properties,
        }


def default_spec(name: str, kubernetes_version: str) -> dict[str, Any]:
    """Writable properties of a cluster made with `az aks create` defaults (2025)."""
    return {
        "dnsPrefix": f"{name[:40]}-dns",
        "agentPoolProfiles": [{
            "name": "nodepool1", "count": 3, "vmSize": "Standard_D4ds_v5",
            "osDiskSizeGB": 128, "osDiskType": "Ephemeral", "kubeletDiskType": "OS",
            "maxPods": 250, "type": "VirtualMachineScaleSets", "enableAutoScaling": False,
            "orchestratorVersion": kubernetes_version, "enableNodePublicIP": False,
            "mode": "System", "osType": "Linux", "osSKU": "Ubuntu", "enableFIPS": False,
        }],
        "servicePrincipalProfile": {"clientId": "msi"},
        "enableRBAC": True,
        "supportPlan": "KubernetesOfficial",
        "networkProfile": {
            "networkPlugin": "azure", "networkPluginMode": "overlay", "networkPolicy": "none",
            "loadBalancerSku": "standard", "podCidr": "10.244.0.0/16",
            "serviceCidr": "10.0.0.0/16", "dnsServiceIP": "10.0.0.10",
            "outboundType": "loadBalancer", "podCidrs": ["10.244.0.0/16"],
            "serviceCidrs": ["10.0.0.0/16"], "ipFamilies": ["IPv4"],
        },
        "autoUpgradeProfile": {"upgradeChannel": "none", "nodeOSUpgradeChannel": "NodeImage"},
        "securityProfile": {},
        "storageProfile": {
            "diskCSIDriver": {"enabled": True}, "fileCSIDriver": {"enabled": True},
            "snapshotController": {"enabled": True},
        },
    }


class ContainerService(Provider):
    namespace = NAMESPACE
    api_versions = {
        "managedClusters": CLUSTER_API_VERSIONS,
        "managedClusters/listClusterUserCredential": CLUSTER_API_VERSIONS,
        "managedClusters/listClusterAdminCredential": CLUSTER_API_VERSIONS,
        "locations/operations": (OPERATION_API_VERSION, *CLUSTER_API_VERSIONS),
    }

    def __init__(self, arm: Any) -> None:
        super().__init__(arm)
        self._lock = threading.RLock()
        self._clusters: dict[tuple[str, str, str], ManagedCluster] = {}

    def routes(self) -> list[Route]:
        cluster = "managedClusters/{resourceName}"
        return [
            Route("GET", "managedClusters", self.list_clusters),
            Route("GET", cluster, self.get_cluster),
            Route("PUT", cluster, self.put_cluster),
            Route("POST", cluster + "/listClusterUserCredential", self.user_credentials),
            Route("POST", cluster + "/listClusterAdminCredential", self.admin_credentials),
            Route("GET", "locations/{location}/operations/{operationId}", self.operation),
        ]

    # ---- state --------------------------------------------------------------------------------

    def add_managed_cluster(
        self, subscription_id: str, resource_group: str, name: str, *, kubeconfig: bytes,
        issuer_url: str, admin_kubeconfig: bytes | None = None, oidc_enabled: bool = False,
        workload_identity_enabled: bool = False, azure_rbac: bool = False,
        kubernetes_version: str = "1.36.3", location: str | None = None,
        entra: bool | None = None, disable_local_accounts: bool = False,
        tags: dict[str, str] | None = None,
    ) -> ManagedCluster:
        """A running cluster. `kubeconfig` is what listClusterUserCredential returns,
        `admin_kubeconfig` listClusterAdminCredential (default: the same); `issuer_url` is
        shown once the OIDC issuer is on. `entra` (AKS-managed Entra ID) defaults to
        `azure_rbac`. Its kubelet identity is a long-replicated service principal."""
        group = self.arm.resource_group(subscription_id, resource_group)
        if group is None:
            raise KeyError(f"add_resource_group({subscription_id!r}, {resource_group!r}) first")
        subscription = self.arm.subscription(subscription_id)
        cluster = ManagedCluster(
            group.subscription_id, group.name, name, location or group.location,
            subscription.tenant_id or "00000000-0000-0000-0000-0000000000aa",
            bytes(kubeconfig), bytes(admin_kubeconfig) if admin_kubeconfig else None,
            issuer_url, oidc_enabled=oidc_enabled, workload_identity=workload_identity_enabled,
            azure_rbac=azure_rbac, entra=azure_rbac if entra is None else entra,
            disable_local_accounts=disable_local_accounts,
            kubernetes_version=kubernetes_version, tags=dict(tags or {}),
            issuer_shown=oidc_enabled, spec=default_spec(name, kubernetes_version),
        )
        self._store(cluster)
        return cluster

    def cluster(
        self, subscription_id: str, resource_group: str, name: str
    ) -> ManagedCluster | None:
        with self._lock:
            return self._clusters.get(_key(subscription_id, resource_group, name))

    def resource_exists(self, resource_id: str, rest: list[str]) -> bool | None:
        parts = resource_id.strip("/").split("/")
        if len(rest) >= 2 and rest[0].lower() == "managedclusters":
            found = self.cluster(parts[1], parts[3], rest[1]) is not None
            # A sub-scope such as `namespaces/<ns>` exists when its cluster does.
            return found if (len(rest) == 2 or not found) else None
        return None

    def _store(self, cluster: ManagedCluster) -> None:
        with self._lock:
            self._clusters[_key(cluster.subscription_id, cluster.resource_group,
                                cluster.name)] = cluster
        self.arm.directory.add(
            cluster.kubelet_object_id, kind="ServicePrincipal",
            display_name=f"{cluster.name}-agentpool", app_id=cluster.kubelet_client_id,
            created=float("-inf"),
        )

    # ---- handlers -----------------------------------------------------------------------------

    def list_clusters(self, request: ArmRequest) -> ArmResponse:
        group = request.resource_group.name.lower() if request.resource_group else None
        with self._lock:
            found = [
                c for (sub, rg, _), c in sorted(self._clusters.items())
                if sub == request.subscription.id.lower() and (group is None or rg == group)
            ]
        return ArmResponse(200, {"value": [self._render(c) for c in found]})

    def get_cluster(self, request: ArmRequest) -> ArmResponse:
        cluster = self._cluster(request)
        return ArmResponse(200, self._render(cluster), {"ETag": f'"{cluster.etag}"'})

    def put_cluster(self, request: ArmRequest) -> ArmResponse:
        assert request.resource_group is not None
        name = request.params["resourceName"]
        models = validation.package_models(SDK_PACKAGE)
        raw = request.json()
        validation.validate_body(models, "ManagedCluster", raw)
        sent = validation.strip_readonly(models, "ManagedCluster", raw)
        cluster = self.cluster(request.subscription.id, request.resource_group.name, name)
        self._check_preconditions(request, cluster)
        if cluster is None:
            return self._create(request, name, sent)
        running = self.arm.operations.running(cluster.id)
        if running is not None:
            raise errors.ArmError(
                409, "OperationNotAllowed",
                "Operation is not allowed because there's an in progress "
                f"{running.kind} operation (operation ID: {running.id}) on the managed cluster "
                f"started on UTC {running.started:%Y-%m-%dT%H:%M:%SZ}. Please wait for it to "
                "finish before starting a new operation. You can also use 'az aks "
                "operation-abort ...' to abort the ongoing operation.",
            )
        expected = validation.as_sent(models, "ManagedCluster", cluster.resource())
        changed = _changes(expected, sent)
        unmodelled = [p for p in changed if not _modelled(p)]
        if unmodelled:
            raise errors.ArmError(
                400, "BadRequest",
                "The fake ARM does not model changing "
                f"{', '.join(unmodelled)} of a managed cluster; it applies only "
                f"{', '.join(MODELLED_CHANGES)}. Send the cluster as GET returned it, with "
                "only those changed.",
                target=unmodelled[0],
            )
        oidc = bool(_get(sent, "properties.oidcIssuerProfile.enabled"))
        workload = bool(_get(sent, "properties.securityProfile.workloadIdentity.enabled"))
        if cluster.oidc_enabled and not oidc:
            raise errors.ArmError(
                400, "BadRequest",
                "OIDC issuer feature cannot be disabled once it is enabled.",
                target="properties.oidcIssuerProfile.enabled",
            )
        _check_workload_identity(oidc, workload)
        azure_rbac = bool(_get(sent, "properties.aadProfile.enableAzureRBAC"))
        entra = cluster.entra or cluster.azure_rbac
        if azure_rbac and not entra:
            raise errors.ArmError(
                400, "BadRequest",
                "Azure RBAC for Kubernetes authorization can only be enabled on clusters with "
                "AKS-managed Microsoft Entra integration (aadProfile.managed).",
                target="properties.aadProfile.enableAzureRBAC",
            )
        cluster.oidc_enabled, cluster.workload_identity = oidc, workload
        if entra:
            cluster.entra, cluster.azure_rbac = True, azure_rbac
        cluster.tags = dict(sent.get("tags") or {})
        cluster.provisioning_state = "Updating"
        cluster.etag = str(uuid.uuid4())
        operation = self.arm.operations.start(
            "update managed cluster", cluster.id, self.arm.operation_delay,
            on_done=lambda: self._finished(cluster),
        )
        return self._async_answer(request, cluster, operation.id, 200)

    def _create(self, request: ArmRequest, name: str, sent: dict[str, Any]) -> ArmResponse:
        assert request.resource_group is not None
        properties = dict(sent.get("properties") or {})
        if not properties.get("agentPoolProfiles"):
            raise errors.ArmError(
                400, "InvalidParameter",
                "The value of parameter agentPoolProfiles is invalid. Please see "
                "https://aka.ms/aks-naming-rules for more details.",
                target="agentPoolProfiles",
            )
        oidc = bool(_get(sent, "properties.oidcIssuerProfile.enabled"))
        workload = bool(_get(sent, "properties.securityProfile.workloadIdentity.enabled"))
        _check_workload_identity(oidc, workload)
        aad = properties.pop("aadProfile", None) or {}
        version = properties.pop("kubernetesVersion", None) or "1.36.3"
        for modelled in ("oidcIssuerProfile", "identityProfile", "disableLocalAccounts"):
            properties.pop(modelled, None)
        security = dict(properties.get("securityProfile") or {})
        security.pop("workloadIdentity", None)
        properties["securityProfile"] = security
        location = str(sent["location"]).replace(" ", "").lower()
        cluster = ManagedCluster(
            request.subscription.id, request.resource_group.name, name, location,
            request.subscription.tenant_id or request.principal.tenant_id,
            b"", None, f"https://{location}.oic.prod-aks.azure.com/"
            f"{request.subscription.tenant_id or request.principal.tenant_id}/{uuid.uuid4()}/",
            oidc_enabled=oidc, workload_identity=workload,
            azure_rbac=bool(aad.get("enableAzureRBAC")), entra=bool(aad.get("managed")),
            disable_local_accounts=bool(_get(sent, "properties.disableLocalAccounts")),
            kubernetes_version=version, tags=dict(sent.get("tags") or {}),
            provisioning_state="Creating", spec=properties,
        )
        cluster.kubeconfig = _kubeconfig(cluster, "clusterUser")
        self._store(cluster)
        operation = self.arm.operations.start(
            "create managed cluster", cluster.id, self.arm.operation_delay,
            on_done=lambda: self._finished(cluster),
        )
        return self._async_answer(request, cluster, operation.id, 201)

    def _finished(self, cluster: ManagedCluster) -> None:
        cluster.provisioning_state = "Succeeded"
        cluster.issuer_shown = cluster.oidc_enabled
        cluster.etag = str(uuid.uuid4())

    def user_credentials(self, request: ArmRequest) -> ArmResponse:
        cluster = self._cluster(request)
        return _credentials("clusterUser", cluster.kubeconfig)

    def admin_credentials(self, request: ArmRequest) -> ArmResponse:
        cluster = self._cluster(request)
        if cluster.disable_local_accounts:
            raise errors.ArmError(
                400, "BadRequest",
                "Getting static credential is not allowed because this cluster is set to "
                "disable local accounts.",
            )
        return _credentials("clusterAdmin", cluster.admin_kubeconfig or cluster.kubeconfig)

    def operation(self, request: ArmRequest) -> ArmResponse:
        found = self.arm.operations.get(request.params["operationId"])
        if found is None or not found.target.lower().startswith(
            f"/subscriptions/{request.subscription.id.lower()}/"
        ):
            raise errors.ArmError(
                404, "NotFound",
                f"Operation {request.params['operationId']} not found.",
            )
        return ArmResponse(200, found.document())

    # ---- helpers ------------------------------------------------------------------------------

    def _cluster(self, request: ArmRequest) -> ManagedCluster:
        assert request.resource_group is not None
        name = request.params["resourceName"]
        cluster = self.cluster(request.subscription.id, request.resource_group.name, name)
        if cluster is None:
            raise errors.resource_not_found(CLUSTER_TYPE, name, request.resource_group.name)
        return cluster

    @staticmethod
    def _check_preconditions(request: ArmRequest, cluster: ManagedCluster | None) -> None:
        if_match = (request.headers.get("If-Match") or "").strip()
        if_none = (request.headers.get("If-None-Match") or "").strip()
        current = cluster.etag if cluster else None
        if if_match and (current is None or (
            if_match != "*" and if_match.strip('"') != current
        )):
            raise errors.ArmError(
                412, "PreconditionFailed",
                f"Operation is not allowed since the eTag '{if_match.strip(chr(34))}' does not "
                f"match the current eTag of the managed cluster"
                f"{' (' + current + ')' if current else ''}.",
            )
        if if_none == "*" and current is not None:
            raise errors.ArmError(
                412, "PreconditionFailed",
                "Operation is not allowed since the managed cluster already exists "
                "(If-None-Match: *).",
            )

    def _render(self, cluster: ManagedCluster) -> dict[str, Any]:
        models = validation.package_models(SDK_PACKAGE)
        return validation.render(models, "ManagedCluster", cluster.resource())

    def _async_answer(
        self, request: ArmRequest, cluster: ManagedCluster, operation_id: str, status: int
    ) -> ArmResponse:
        url = (
            f"{self.arm.endpoint}/subscriptions/{cluster.subscription_id}/providers/{NAMESPACE}"
            f"/locations/{cluster.location}/operations/{operation_id}"
            f"?api-version={OPERATION_API_VERSION}"
        )
        headers = {"Azure-AsyncOperation": url, "ETag": f'"{cluster.etag}"'}
        if self.arm.retry_after is not None:
            headers["Retry-After"] = str(self.arm.retry_after)
        return ArmResponse(status, self._render(cluster), headers)


def _check_workload_identity(oidc: bool, workload: bool) -> None:
    if workload and not oidc:
        raise errors.ArmError(
            400, "BadRequest",
            "Enabling workload identity requires enabling OIDC issuer (set "
            "oidcIssuerProfile.enabled to true).",
            target="properties.securityProfile.workloadIdentity.enabled",
        )


def _credentials(name: str, kubeconfig: bytes) -> ArmResponse:
    return ArmResponse(200, {"kubeconfigs": [
        {"name": name, "value": base64.b64encode(kubeconfig).decode()}
    ]})


def _kubeconfig(cluster: ManagedCluster, user: str) -> bytes:
    """A kubeconfig for a cluster created through the API (its server is not reachable)."""
    context = cluster.name
    return (
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
        f"    server: https://{cluster.fqdn}:443\n  name: {context}\n"
        f"contexts:\n- context:\n    cluster: {context}\n    user: {user}_{cluster.resource_group}"
        f"_{cluster.name}\n  name: {context}\ncurrent-context: {context}\npreferences: {{}}\n"
        f"users:\n- name: {user}_{cluster.resource_group}_{cluster.name}\n  user:\n"
        f"    token: {uuid.uuid4().hex}\n"
    ).encode()


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list):
        if not value:
            out[path] = []
        for i, item in enumerate(value):
            _flatten(item, f"{path}[{i}]", out)
    elif value is not None:
        out[path] = value


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The leaf paths whose values differ (absent and null count as the same)."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    _flatten(before, "", old)
    _flatten(after, "", new)
    return sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))


def _modelled(path: str) -> bool:
    for allowed in MODELLED_CHANGES:
        if allowed.endswith(".*") and path.startswith(allowed[:-1]):
            return True
        if path == allowed:
            return True
    return False


def _get(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _key(subscription_id: str, resource_group: str, name: str) -> tuple[str, str, str]:
    return subscription_id.lower(), resource_group.lower(), name.lower()
