"""A node agent that plays the kubelet of AKS-like nodes for a real Kubernetes control plane.

    agent = NodeAgent(admin_kubeconfig, root).start()   # registers the Nodes, serves logs
    ...                                                  # the real scheduler binds pods to them
    agent.stop()

It does what the kubelet does, against the real API server: registers Nodes (and lifts the
not-ready taint, the node-lifecycle controller's job), watches the pods bound to them, runs
their containers, reports pod status through pods/status (conditions merged, not clobbered),
posts events, serves /containerLogs over HTTPS for `kubectl logs` through the API server,
honours graceful deletion and eviction, and deletes a finished, deleted pod with grace 0.

Containers are processes of this machine: the host is the "image" and `python` is the agent's
interpreter (`executables`). Where the machine allows it (root), each container gets new
mount/UTS/IPC/PID namespaces, an overlay rootfs, its volumes at their mount paths, a read-only
root when asked, and a memory cgroup enforcing its limit; otherwise paths are mapped and RSS
is sampled (said once on stderr).

Module map: agent (NodeAgent: nodes, pod watch), pods (the pod worker), launch (container
config), containers (a running instance), _exec (its shim and init), sandbox (isolation,
identity), cgroups, volumes, envvars, status, logs, logs_server, events, images, nodes, kube,
tls, quantity.

Not done (the kubelet would): init and sidecar containers (such pods stay Pending with a
message), probes (a started container is ready at once), lifecycle hooks, service-link
environment variables (KUBERNETES_SERVICE_HOST would point off this machine), projected
token refresh, log rotation, image entrypoints (a container needs `command`), node
heartbeats (no node-lifecycle controller runs).
"""

from .agent import NodeAgent
from .nodes import NodePool, aks_like_pools, default_pools, gpu_pool, spot_pool

__all__ = ["NodeAgent", "NodePool", "aks_like_pools", "default_pools", "gpu_pool", "spot_pool"]
