"""A whole test cluster: the real control plane, the node agent (the one stand-in: it plays the
kubelet) and, for `make cluster-up`, Azurite; plus per-user namespaces provisioned exactly as
`aksrun admin add-user` will: a namespace, the `aksrun` service account the pods run as,
aksrun's Role and a RoleBinding to the person, who signs in with a kubeconfig of their own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aksrun.adapters.kubernetes_rbac import (
    node_reader_binding,
    node_reader_role,
    user_role,
    user_role_binding,
)

from .control_plane import ControlPlane

SERVICE_ACCOUNT = "aksrun"
USER_GROUP = "aksrun-users"


@dataclass
class UserNamespace:
    """One person's namespace and the kubeconfig they sign in with (only aksrun's Role)."""

    namespace: str
    user: str
    kubeconfig: Path


class TestCluster:
    """Control plane + node agent. `root` holds everything it writes."""

    __test__ = False  # not a pytest test class

    def __init__(self, root: Path, pools: list[Any] | None = None,
                 shared_paths: tuple[str, ...] = (), registries: Sequence[Any] = (),
                 image_cache: Path | None = None, trusted_ca: Path | None = None) -> None:
        self.root = root
        self.trusted_ca = trusted_ca  # the node agent's extra trust (see NodeAgent)
        self.pools = pools
        if pools is None:  # AKS's default system pool, and a spot pool with AKS's taint
            from tests.support.node_agent import default_pools, spot_pool

            self.pools = [*default_pools(), spot_pool(count=1)]
        self.shared_paths = shared_paths
        # the registries the node agent pulls from (RegistryClient): pods run in their
        # images; without any, the agent's host mode (this machine stands in for images)
        self.registries = list(registries)
        self.image_cache = image_cache
        self.control_plane = ControlPlane(root / "control-plane")
        self.agent: Any = None
        self._admin: Any = None

    def start(self) -> TestCluster:
        from tests.support.node_agent import NodeAgent

        self.control_plane.start()
        try:
            self.agent = NodeAgent(self.admin_kubeconfig, self.root / "node-agent",
                                   pools=self.pools, shared_paths=self.shared_paths,
                                   registries=self.registries,
                                   image_cache=self.image_cache,
                                   trusted_ca=self.trusted_ca).start()
        except BaseException:
            self.control_plane.stop()
            raise
        return self

    def stop(self) -> None:
        if self.agent is not None:
            with contextlib.suppress(Exception):
                self.agent.stop()
        self.control_plane.stop()

    def __enter__(self) -> TestCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def admin_kubeconfig(self) -> Path:
        return self.control_plane.admin_kubeconfig

    @property
    def url(self) -> str:
        return self.control_plane.url

    @property
    def version(self) -> str:
        return self.control_plane.version

    def admin_client(self) -> Any:
        """An ApiClient signed in as the cluster admin (system:masters)."""
        if self._admin is None:
            from kubernetes import config

            self._admin = config.new_client_from_config(str(self.admin_kubeconfig))
        return self._admin

    # ------------------------------------------------------------------ users
    def add_user_namespace(self, namespace: str, user: str, kubeconfig: Path,
                           service_account: bool = True) -> UserNamespace:
        """Provision `namespace` for `user` (aksrun's Role only) and write their kubeconfig."""
        from kubernetes import client

        core = client.CoreV1Api(self.admin_client())
        rbac = client.RbacAuthorizationV1Api(self.admin_client())
        core.create_namespace({"metadata": {"name": namespace,
                                            "labels": {"app.kubernetes.io/managed-by": "aksrun"}}})
        if service_account:
            core.create_namespaced_service_account(namespace, {"metadata": {
                "name": SERVICE_ACCOUNT, "labels": {"app.kubernetes.io/managed-by": "aksrun"}}})
        rbac.create_namespaced_role(namespace, user_role(namespace))
        rbac.create_namespaced_role_binding(namespace, user_role_binding(namespace, user))
        for create, body in ((rbac.create_cluster_role, node_reader_role()),
                             (rbac.create_cluster_role_binding, node_reader_binding(user))):
            try:
                create(body)
            except client.ApiException as exc:
                if exc.status != 409:  # shared by every namespace of the person: made once
                    raise
        self.control_plane.user_kubeconfig(kubeconfig, user, (USER_GROUP,), namespace)
        return UserNamespace(namespace, user, kubeconfig)

    def delete_namespace(self, namespace: str, wait: float = 0.0) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.admin_client())
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(namespace, propagation_policy="Background")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                core.read_namespace(namespace)
            except client.ApiException:
                return
            time.sleep(0.2)

    def metrics(self) -> str:
        """The API server's Prometheus metrics (its own request counts, among others)."""
        return self.control_plane.get("/metrics", timeout=10).decode()
