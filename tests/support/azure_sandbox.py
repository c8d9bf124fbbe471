"""An Azure subscription on this machine, for a person at a terminal (`make cluster-up`).

    sandbox = AzureSandbox.start(directory, say=print)
    sandbox.write_env_files()  # admin.env.sh, alice.env.sh, bob.env.sh, env.sh
    ...
    sandbox.stop()

One of everything an admin and a data scientist meet on Azure, each the real thing where one
runs here and the strict stand-in where none can:
- the REAL control plane (tests/support/k8s) with the node agent as kubelet, registered in
  the fake ARM as the managed cluster `aks-aksrun` (OIDC issuer and workload identity on),
  Azure Workload Identity's mutating webhook (tests/support/workload_identity_webhook.py),
  and the node trusting the stand-ins' self-made certificate;
- the strict fake ARM (tests/support/fake_arm) holding the subscription: resource group
  `rg-aksrun` with only that cluster, so `aksrun admin bootstrap` creates the storage account
  (Azurite in OAuth mode behind Storage's data-plane RBAC) and the registry (served by the
  ACR data-plane stand-in over a real distribution registry, built into by ACR Tasks runs
  that run buildah); Microsoft Graph and Entra ID's directory on the same server;
- the fake Entra ID, whose federation checks each managed identity's token exchange against
  its federated credentials;
- two people, alice@contoso.com and bob@contoso.com, besides the admin (Owner of the
  subscription). Each `<name>.env.sh` signs a shell in as that person: Entra tokens through
  DefaultAzureCredential, and a kubeconfig naming their UPN (a client certificate: the API
  server can't verify the stand-in Entra's unsigned tokens, where AKS verifies Entra's).

`env.sh` keeps the quick path of earlier versions: a namespace `aksrun-<you>` made directly
on the cluster, the store reached with Azurite's key, the registry of `rg-aksrun-dev`.
"""

from __future__ import annotations

import contextlib
import shlex
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .subscription import GRAPH_AUDIENCE, RESOURCE_GROUP, FakeSubscription, start_subscription

DEV_RESOURCE_GROUP = "rg-aksrun-dev"
ARM_AUDIENCE = "https://management.azure.com"
PEOPLE = {  # upn -> the client id their sign-in uses here
    "alice@contoso.com": "a11ce000-0000-4000-8000-0000000a11ce",
    "bob@contoso.com": "b0b00000-0000-4000-8000-000000000b0b",
}
ASSERTION = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJkZXZlbG9wZXIifQ."
# What a shell that sourced another person's file must not keep.
_FOREIGN = ("AKSRUN_STORE", "AKSRUN_NAMESPACE", "AKSRUN_STORAGE_CONNECTION_STRING",
            "AKSRUN_IMAGE", "AZURE_AKS_CLUSTER_NAME", "AZURE_CONTAINER_REGISTRY", "KUBECONFIG",
            "AKSRUN_BACKEND", "AKSRUN_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_ACCOUNT")


@dataclass
class AzureSandbox:
    directory: Path
    images: Any
    cluster: Any
    azurite: Any
    entra: Any
    subscription: FakeSubscription
    stack: Any
    webhook: Any
    ca_bundle: Path
    token_file: Path
    parts: list[Any] = field(default_factory=list)

    @classmethod
    def start(cls, directory: Path, say: Callable[[str], None] = lambda _t: None,
              user: str = "dev", **delays: float) -> AzureSandbox:
        """Everything up (a few seconds past the image cache and the control-plane build);
        `delays` for the fake ARM (defaults: role assignments take 5 s to apply, a new
        federated credential 3 s, as Azure's take minutes)."""
        from .acr_stack import AcrStack
        from .azure_fixtures import OAuthAzurite
        from .azurite import start_azurite, write_ca_bundle
        from .fake_entra import FakeEntra
        from .images.session import TestImages
        from .k8s.cluster import TestCluster
        from .workload_identity_webhook import WorkloadIdentityWebhook

        parts: list[Any] = []  # stopped in reverse order
        try:
            images = TestImages(directory / "images").start(say=say)
            parts.append(images)
            azurite = start_azurite(directory / "azurite", oauth=True)
            parts.append(azurite)
            cert, key = azurite.cert_file, azurite.key_file
            ca_bundle = write_ca_bundle(cert, directory / "ca-bundle.pem")
            cluster = TestCluster(directory / "state", registries=images.registry_clients(),
                                  image_cache=images.layer_cache, trusted_ca=ca_bundle)
            parts.append(cluster)
            cluster.start()
            entra = FakeEntra(cert, key).start()
            parts.append(entra)
            token_file = directory / "federated-token"
            token_file.write_text(ASSERTION)
            webhook = WorkloadIdentityWebhook(cluster, cert, key, entra.tenant_id,
                                              entra.authority_host).start()
            parts.append(webhook)
            oauth = OAuthAzurite(azurite, entra, token_file, ca_bundle,
                                 entra.workload_identity_env(token_file, ca_bundle))
            settings = {"role_propagation_delay": 5.0, "federation_delay": 3.0, **delays}
            subscription = start_subscription(oauth, cluster, storage_account=None,
                                              **settings)
            parts.append(subscription)
            stack = AcrStack.start(images, cert, key, entra, azurite, directory / "acr",
                                   arm=subscription.arm,
                                   subscription=subscription.subscription_id,
                                   resource_group=DEV_RESOURCE_GROUP)
            parts.append(stack)
        except BaseException:
            for part in reversed(parts):
                with contextlib.suppress(Exception):
                    part.stop()
            raise
        sandbox = cls(directory, images, cluster, azurite, entra, subscription, stack, webhook,
                      ca_bundle, token_file, parts)
        sandbox._wire(user)
        return sandbox

    def _wire(self, user: str) -> None:
        """What ties the pieces as Azure ties them: a registry made through ARM is served by
        the ACR front, which answers by ARM's role assignments; nodes pull from it as the
        kubelet identity; the people exist in the directory."""
        arm, front = self.subscription.arm, self.stack.front
        arm.provider("Microsoft.ContainerRegistry").login_server_for = \
            lambda _name: front.login_server
        front.role_source = lambda ids: self._registry_roles(ids)
        self.cluster.agent.image_store.registries[front.login_server] = \
            self.stack.node_registry()
        for upn, client_id in PEOPLE.items():
            arm.add_principal(object_id(client_id), upn=upn, kind="User",
                              display_name=upn.split("@")[0].title())
        self.dev_user = user

    def _registry_roles(self, ids: list[str]) -> set[str]:
        """Role names in force for these principals on any registry the front serves."""
        arm, login = self.subscription.arm, self.stack.front.login_server
        registries = arm.provider("Microsoft.ContainerRegistry")
        with registries._lock:
            served = [r.id for r in registries._registries.values() if r.login_server == login]
        return {role.name for scope in served for role in arm.rbac.effective_roles(ids, scope)}

    def stop(self) -> None:
        for part in reversed(self.parts):
            with contextlib.suppress(Exception):
                part.stop()

    # ---- the shells ---------------------------------------------------------------------------

    def common_env(self) -> dict[str, str]:
        sub = self.subscription
        return {
            "AZURE_SUBSCRIPTION_ID": sub.subscription_id,
            "AZURE_RESOURCE_GROUP": RESOURCE_GROUP,
            "AKSRUN_ARM_ENDPOINT": sub.arm.endpoint,
            "AKSRUN_ARM_AUDIENCE": ARM_AUDIENCE,
            "AKSRUN_GRAPH_ENDPOINT": sub.arm.endpoint,
            "AKSRUN_GRAPH_AUDIENCE": GRAPH_AUDIENCE,
            "AKSRUN_REGISTRY_LOGIN_SERVER": self.stack.front.login_server,
            **self.stack.build_env,
            **self.entra.workload_identity_env(self.token_file, self.ca_bundle),
            "SSL_CERT_FILE": str(self.ca_bundle),
        }

    def admin_env(self) -> dict[str, str]:
        """The subscription's Owner; the cluster is reached through ARM's admin credential."""
        return {**self.common_env(), "AZURE_AKS_CLUSTER_NAME": self.subscription.cluster_name}

    def person_env(self, upn: str) -> dict[str, str]:
        """A data scientist: their own Entra sign-in and kubeconfig, nothing else granted
        until `aksrun admin add-user`."""
        name = upn.split("@")[0]
        kubeconfig = self.subscription.person_kubeconfig(upn, self.directory /
                                                         f"{name}.kubeconfig")
        return {
            **self.common_env(),
            "AZURE_CLIENT_ID": PEOPLE[upn],
            "AKSRUN_BACKEND": "kubernetes",
            "KUBECONFIG": str(kubeconfig),
            # The storage accounts here all answer at one endpoint (Azurite's account).
            "AKSRUN_STORAGE_ACCOUNT_URL": self.subscription.gate.url,
        }

    def dev_env(self) -> dict[str, str]:
        """The quick path: a namespace made directly, the store reached with Azurite's key."""
        namespace = f"aksrun-{self.dev_user}"
        person = self.cluster.add_user_namespace(namespace, self.dev_user,
                                                 self.directory / "user.kubeconfig")
        return {
            "AKSRUN_BACKEND": "kubernetes",
            "KUBECONFIG": str(person.kubeconfig),
            "AKSRUN_NAMESPACE": namespace,
            "AKSRUN_STORE": f"az://{namespace}/aksrun",
            "AKSRUN_STORAGE_CONNECTION_STRING": self.azurite.connection_string,
            **self.entra.workload_identity_env(self.token_file, self.ca_bundle),
            "SSL_CERT_FILE": str(self.ca_bundle),
            **self.stack.env,
        }

    def write_env_files(self) -> dict[str, Path]:
        """One file per shell; env.sh last (its presence says the sandbox is ready)."""
        written: dict[str, Path] = {}
        files = {"admin": self.admin_env()}
        for upn in PEOPLE:
            files[upn.split("@")[0]] = self.person_env(upn)
        files["env"] = self.dev_env()
        header = (f"# aksrun sandbox: kube-apiserver {self.cluster.version} at "
                  f"{self.cluster.url}; fake ARM at {self.subscription.arm.endpoint}; "
                  f"registry {self.stack.front.login_server} (ACR data plane)")
        for name, env in files.items():
            path = self.directory / ("env.sh" if name == "env" else f"{name}.env.sh")
            unset = [k for k in _FOREIGN if k not in env]
            lines = [header if name == "env" else f"# aksrun sandbox: a shell as {name}",
                     *(f"unset {k}" for k in unset),
                     *(f"export {k}={shlex.quote(v)}" for k, v in env.items())]
            path.write_text("\n".join(lines) + "\n")
            written[name] = path
        return written


def object_id(client_id: str) -> str:
    """The object id the fake Entra's tokens carry for a client it has no identity for."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, client_id))
