"""Node pools, Node objects and the scheduler's filter logic (taints, node selector/affinity,
resource fit), with the messages kube-scheduler and the cluster autoscaler write.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from .objects import now_ts, parse_quantity
from .selectors import node_requirement_match

SPOT_LABEL = "kubernetes.azure.com/scalesetpriority"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"


@dataclass
class NodePool:
    """An AKS-like agent pool: `count` identical nodes; the autoscaler may grow it to max_count."""

    name: str = "nodepool1"
    count: int = 3
    instance_type: str = "Standard_D4s_v5"
    cpu: str = "4"
    memory: str = "16Gi"
    gpus: int = 0
    max_count: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict] = field(default_factory=list)
    max_pods: int = 110

    @property
    def vmss(self) -> str:
        digits = int(hashlib.sha256(self.name.encode()).hexdigest(), 16) % 10**8
        return f"aks-{self.name}-{digits:08d}-vmss"


def gpu_pool(name: str = "gpunp", count: int = 1, instance_type: str = "Standard_NC24ads_A100_v4",
             cpu: str = "24", memory: str = "220Gi", gpus: int = 1, **kw: object) -> NodePool:
    """A GPU pool tainted sku=gpu:NoSchedule, as AKS documents for GPU node pools."""
    return NodePool(name=name, count=count, instance_type=instance_type, cpu=cpu, memory=memory,
                    gpus=gpus, taints=[{"key": "sku", "value": "gpu", "effect": "NoSchedule"}],
                    labels={"accelerator": "nvidia"}, **kw)  # type: ignore[arg-type]


def spot_pool(name: str = "spotnp", count: int = 1, instance_type: str = "Standard_D4s_v5",
              cpu: str = "4", memory: str = "16Gi", **kw: object) -> NodePool:
    """A spot pool with the label and taint AKS puts on spot nodes."""
    return NodePool(name=name, count=count, instance_type=instance_type, cpu=cpu, memory=memory,
                    labels={SPOT_LABEL: "spot"},
                    taints=[{"key": SPOT_LABEL, "value": "spot", "effect": "NoSchedule"}],
                    **kw)  # type: ignore[arg-type]


def node_object(pool: NodePool, index: int, ip: str, uid: str = "") -> dict:
    name = f"{pool.vmss}{index:06d}"
    labels = {
        "agentpool": pool.name, "kubernetes.azure.com/agentpool": pool.name,
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name,
        INSTANCE_TYPE: pool.instance_type, "beta.kubernetes.io/instance-type": pool.instance_type,
        "kubernetes.azure.com/mode": "user", "topology.kubernetes.io/region": "westeurope",
        "topology.kubernetes.io/zone": "0", **pool.labels,
    }
    resources = {"cpu": pool.cpu, "memory": pool.memory, "pods": str(pool.max_pods),
                 "ephemeral-storage": "129886128Ki"}
    if pool.gpus:
        resources["nvidia.com/gpu"] = str(pool.gpus)
    ts = now_ts()
    spec: dict = {"providerID": "azure:///subscriptions/00000000-0000-0000-0000-000000000000/"
                  "resourceGroups/mc_fake/providers/Microsoft.Compute/virtualMachineScaleSets/"
                  f"{pool.vmss}/virtualMachines/{index}"}
    if pool.taints:
        spec["taints"] = [dict(t) for t in pool.taints]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": uid, "labels": labels, "annotations": {},
                     "creationTimestamp": ts},
        "spec": spec,
        "status": {
            "capacity": dict(resources), "allocatable": dict(resources),
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": ts, "lastTransitionTime": ts}],
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64", "bootID": uid, "machineID": uid.replace("-", ""),
                "systemUUID": uid, "containerRuntimeVersion": "containerd://1.7.27-1",
                "kernelVersion": "5.15.0-1089-azure", "kubeProxyVersion": "",
                "kubeletVersion": "v1.31.3", "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.5 LTS",
            },
        },
    }


def pod_requests(pod: dict) -> Counter:
    """Summed container requests (apiserver defaulting already copied limits into requests)."""
    total: Counter = Counter()
    for c in pod["spec"].get("containers", []):
        res = c.get("resources") or {}
        for name, q in {**(res.get("limits") or {}), **(res.get("requests") or {})}.items():
            total[name] += parse_quantity(q)
    total["pods"] += 1
    return total


def _tolerates(tol: dict, taint: dict) -> bool:
    if tol.get("effect") and tol["effect"] != taint.get("effect"):
        return False
    if tol.get("operator", "Equal") == "Exists":
        return not tol.get("key") or tol["key"] == taint["key"]
    return tol.get("key") == taint["key"] and tol.get("value", "") == taint.get("value", "")


def fit_reasons(pod: dict, node: dict, used: Counter) -> list[str]:
    """Why `pod` cannot go on `node` (empty when it fits), first failing filter wins."""
    spec = pod["spec"]
    tolerations = spec.get("tolerations") or []
    for taint in node["spec"].get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(
                _tolerates(t, taint) for t in tolerations):
            return [f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"]
    labels = node["metadata"]["labels"]
    affinity = "node(s) didn't match Pod's node affinity/selector"
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return [affinity]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is not None:
        fields = {"metadata.name": node["metadata"]["name"]}

        def term_ok(term: dict) -> bool:
            exprs, flds = term.get("matchExpressions") or [], term.get("matchFields") or []
            return bool(exprs or flds) and all(
                node_requirement_match(r, labels) for r in exprs) and all(
                node_requirement_match(r, fields) for r in flds)

        if not any(term_ok(t) for t in required.get("nodeSelectorTerms") or []):
            return [affinity]
    alloc = {k: parse_quantity(v) for k, v in node["status"]["allocatable"].items()}
    out = []
    for name, amount in sorted(pod_requests(pod).items()):
        if amount and used.get(name, 0) + amount > alloc.get(name, 0) + 1e-9:
            out.append("Too many pods" if name == "pods" else f"Insufficient {name}")
    return out


def unschedulable_message(per_node: list[list[str]]) -> str:
    """kube-scheduler's FailedScheduling text, e.g. '0/3 nodes are available: 3 Insufficient
    cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.'"""
    n = len(per_node)
    if not n:
        return "no nodes available to schedule pods"
    counts = Counter(r for reasons in per_node for r in reasons)
    head = ", ".join(sorted(f"{c} {r}" for r, c in counts.items()))  # as FitError sorts
    resource = sum(1 for rs in per_node
                   if any(r.startswith(("Insufficient", "Too many")) for r in rs))
    tail = []
    if resource:
        tail.append(f"{resource} No preemption victims found for incoming pod")
    if n - resource:
        tail.append(f"{n - resource} Preemption is not helpful for scheduling")
    return f"0/{n} nodes are available: {head}. preemption: 0/{n} nodes are available: " \
        f"{', '.join(tail)}."


def pick_node(pod: dict, nodes: list[dict], used: dict[str, Counter]) -> tuple[str | None, str]:
    """The least-allocated feasible node, or None and the FailedScheduling message."""
    per_node, feasible = [], []
    for node in nodes:
        name = node["metadata"]["name"]
        reasons = fit_reasons(pod, node, used.get(name, Counter()))
        per_node.append(reasons)
        if not reasons:
            cpu = parse_quantity(node["status"]["allocatable"].get("cpu", "1")) or 1
            feasible.append((used.get(name, Counter())["cpu"] / cpu, name))
    if feasible:
        return min(feasible)[1], ""
    return None, unschedulable_message(per_node)


def autoscale(pod: dict, pools: list[NodePool], pending: Counter) -> tuple[NodePool | None, str]:
    """Cluster-autoscaler's decision: a pool to grow by one node, or the NotTriggerScaleUp text."""
    reasons: Counter = Counter()
    for pool in pools:
        template = node_object(pool, 0, "10.224.0.0")
        why = fit_reasons(pod, template, Counter())
        if why:
            reasons.update(why)
            continue
        size = pool.count + pending[pool.name]
        if pool.max_count is not None and size < pool.max_count:
            return pool, (f"pod triggered scale-up: [{{{pool.vmss} {size}->{size + 1} "
                          f"(max: {pool.max_count})}}]")
        reasons["max node group size reached"] += 1
    text = ", ".join(sorted(f"{c} {r}" for r, c in reasons.items()))
    return None, f"pod didn't trigger scale-up: {text}"
