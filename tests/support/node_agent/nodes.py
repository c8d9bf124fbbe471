"""AKS-like node pools and the Node objects the agent registers for them.

Names, labels and taints follow what AKS puts on its VMSS nodes, so scheduling constraints
that aksrun writes (instance type, spot affinity, GPU tolerations) meet the same node shape the
real kube-scheduler sees on AKS.
"""

from __future__ import annotations

import hashlib
import os
import platform
import uuid
from dataclasses import dataclass, field
from typing import Any

SPOT_LABEL = "kubernetes.azure.com/scalesetpriority"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
GPU_RESOURCE = "nvidia.com/gpu"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class NodePool:
    """An agent pool: `count` identical VMSS nodes.

    `max_count` is accepted for compatibility with the old fake but nothing autoscales here.
    """

    name: str = "nodepool1"
    count: int = 2
    instance_type: str = "Standard_D4s_v5"
    cpu: str = "4"
    memory: str = "16Gi"
    gpus: int = 0
    max_pods: int = 110
    mode: str = "User"  # AKS: kubernetes.azure.com/mode is "system" or "user"
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    ephemeral_storage: str = "129886128Ki"
    zone: str = "0"  # AKS without availability zones reports zone "0"
    max_count: int | None = None

    @property
    def vmss(self) -> str:
        """The VMSS name prefix AKS gives a pool: aks-<pool>-<8 digits>-vmss."""
        digits = int(hashlib.sha256(self.name.encode()).hexdigest(), 16) % 10**8
        return f"aks-{self.name}-{digits:08d}-vmss"

    def node_name(self, index: int) -> str:
        """VMSS instance names carry the instance id in base 36, six characters."""
        suffix = ""
        for _ in range(6):
            index, rem = divmod(index, 36)
            suffix = _B36[rem] + suffix
        return f"{self.vmss}{suffix}"


def gpu_pool(name: str = "gpunp", count: int = 1,
             instance_type: str = "Standard_NC24ads_A100_v4", cpu: str = "24",
             memory: str = "220Gi", gpus: int = 1, **kw: Any) -> NodePool:
    """A GPU pool tainted sku=gpu:NoSchedule, as AKS documents for GPU node pools."""
    labels = {"accelerator": "nvidia", **kw.pop("labels", {})}
    taints = kw.pop("taints", [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}])
    return NodePool(name=name, count=count, instance_type=instance_type, cpu=cpu, memory=memory,
                    gpus=gpus, labels=labels, taints=taints, **kw)


def spot_pool(name: str = "spotnp", count: int = 1, instance_type: str = "Standard_D4s_v5",
              cpu: str = "4", memory: str = "16Gi", **kw: Any) -> NodePool:
    """A spot pool with the label and taint AKS puts on every spot node."""
    labels = {SPOT_LABEL: "spot", **kw.pop("labels", {})}
    taints = kw.pop("taints", [{"key": SPOT_LABEL, "value": "spot", "effect": "NoSchedule"}])
    return NodePool(name=name, count=count, instance_type=instance_type, cpu=cpu, memory=memory,
                    labels=labels, taints=taints, **kw)


def default_pools() -> list[NodePool]:
    """What `az aks create` gives: one system pool, nodepool1 (2 x Standard_D4s_v5 here)."""
    return [NodePool(name="nodepool1", count=2, mode="System")]


def aks_like_pools() -> list[NodePool]:
    """A cluster with the shapes aksrun targets: system, bigger CPU, spot and GPU pools."""
    return [
        NodePool(name="nodepool1", count=2, mode="System"),
        NodePool(name="cpu8", count=1, instance_type="Standard_D8s_v5", cpu="8", memory="32Gi"),
        spot_pool(),
        gpu_pool(),
    ]


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def node_labels(pool: NodePool, name: str) -> dict[str, str]:
    """The labels AKS's node bootstrap and the kubelet put on a node."""
    arch = _arch()
    return {
        "agentpool": pool.name,
        "beta.kubernetes.io/arch": arch,
        "beta.kubernetes.io/instance-type": pool.instance_type,
        "beta.kubernetes.io/os": "linux",
        "failure-domain.beta.kubernetes.io/region": "westeurope",
        "failure-domain.beta.kubernetes.io/zone": pool.zone,
        "kubernetes.azure.com/agentpool": pool.name,
        "kubernetes.azure.com/cluster": "MC_aksrun-test_aksrun-test_westeurope",
        "kubernetes.azure.com/mode": pool.mode.lower(),
        "kubernetes.azure.com/node-image-version": "AKSUbuntu-2204gen2containerd-202411.12.0",
        "kubernetes.azure.com/os-sku": "Ubuntu",
        "kubernetes.azure.com/role": "agent",
        "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/role": "agent",
        "node-role.kubernetes.io/agent": "",
        INSTANCE_TYPE: pool.instance_type,
        "storageprofile": "managed",
        "storagetier": "Premium_LRS",
        "topology.disk.csi.azure.com/zone": "",
        "topology.kubernetes.io/region": "westeurope",
        "topology.kubernetes.io/zone": pool.zone,
        **pool.labels,
    }


def node_resources(pool: NodePool) -> dict[str, str]:
    resources = {"cpu": pool.cpu, "memory": pool.memory, "pods": str(pool.max_pods),
                 "ephemeral-storage": pool.ephemeral_storage, "hugepages-1Gi": "0",
                 "hugepages-2Mi": "0"}
    if pool.gpus:
        resources[GPU_RESOURCE] = str(pool.gpus)
    return resources


def node_conditions(now: str, previous: list[dict] | None = None) -> list[dict]:
    """The four conditions a healthy kubelet posts, keeping transition times it posted before."""
    before = {c.get("type"): c for c in previous or []}
    out = []
    for ctype, status, reason, message in (
        ("MemoryPressure", "False", "KubeletHasSufficientMemory",
         "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ):
        old = before.get(ctype) or {}
        since = old.get("lastTransitionTime") if old.get("status") == status else None
        out.append({"type": ctype, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": since or now})
    return out


def node_status(pool: NodePool, name: str, port: int, kubelet_version: str, now: str,
                previous: dict | None = None) -> dict:
    """status as the kubelet posts it; the only address is InternalIP 127.0.0.1, so the API
    server reaches this agent's log endpoint on loopback whatever address types it prefers."""
    node_id = uuid.uuid5(uuid.NAMESPACE_DNS, name)
    resources = node_resources(pool)
    return {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": node_conditions(now, (previous or {}).get("conditions")),
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "architecture": _arch(),
            "bootID": str(uuid.uuid4()),
            "machineID": node_id.hex,
            "systemUUID": str(node_id),
            "containerRuntimeVersion": "containerd://1.7.27-1",
            "kernelVersion": os.uname().release,
            "kubeProxyVersion": "",
            "kubeletVersion": kubelet_version,
            "operatingSystem": "linux",
            "osImage": "Ubuntu 22.04.5 LTS",
        },
    }


def node_object(pool: NodePool, index: int, pod_cidr: str) -> dict:
    """The Node the kubelet registers (status is written separately through nodes/status)."""
    name = pool.node_name(index)
    spec: dict[str, Any] = {
        "providerID": "azure:///subscriptions/00000000-0000-0000-0000-000000000000/"
        "resourceGroups/mc_aksrun-test_aksrun-test_westeurope/providers/"
        f"Microsoft.Compute/virtualMachineScaleSets/{pool.vmss}/virtualMachines/{index}",
        "podCIDR": pod_cidr,
        "podCIDRs": [pod_cidr],
    }
    if pool.taints:
        spec["taints"] = [dict(t) for t in pool.taints]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels(pool, name),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": spec,
    }
