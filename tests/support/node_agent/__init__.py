"""A node agent that plays the kubelet of AKS-like nodes for a real Kubernetes control plane.

    agent = NodeAgent(admin_kubeconfig, root).start()   # registers the Nodes, serves logs
    ...                                                  # the real scheduler binds pods to them
    agent.stop()

It does what the kubelet does, against the real API server: registers Nodes (and lifts the
not-ready taint, the node-lifecycle controller's job), watches the pods bound to them, runs
their containers, reports pod status through pods/status (conditions merged, not clobbered),
posts events, serves /containerLogs over HTTPS for `kubectl logs` through the API server,
honours graceful deletion and eviction, and deletes a finished, deleted pod with grace 0.

Given `registries` (the test registry), containers run in their images: the agent pulls an
image as containerd does (tag or digest resolved by the registry, layers unpacked once as
overlay snapshots, the kubelet's Pulling/Pulled events, ErrImagePull / ImagePullBackOff with
containerd's message when the registry lacks it), stacks its layers as the overlay's lower
dirs, and applies its config (Env under the pod's env, WORKDIR, ENTRYPOINT/CMD, USER under
runAsUser; `python` is whatever the image's PATH finds). Without registries (host mode) the
machine's `/` is every image and `python` the agent's interpreter (`executables`).

Where the machine allows it (root), each container gets new mount/UTS/IPC/PID namespaces, an
overlay rootfs, its volumes at their mount paths, a read-only root when asked, and a memory
cgroup enforcing its limit; otherwise paths are mapped on the host, RSS is sampled and images
cannot be used (said once on stderr).

Module map: agent (NodeAgent: nodes, pod watch), pods (the pod worker), launch (container
config), image_store (pulls, layer snapshots), image_config (an image's config applied),
containers (a running instance), _exec (its shim and init), sandbox (isolation, identity),
cgroups, volumes, envvars, status, logs, logs_server, events, images (references, pull
messages), nodes, kube, tls, quantity.

Not done (the kubelet would): init and sidecar containers (such pods stay Pending with a
message), probes (a started container is ready at once), lifecycle hooks, service-link
environment variables (KUBERNETES_SERVICE_HOST would point off this machine), projected
token refresh, log rotation, registry credentials (the test registry is anonymous), node
status `images`, node heartbeats (no node-lifecycle controller runs).
"""

from .agent import NodeAgent
from .nodes import NodePool, aks_like_pools, default_pools, gpu_pool, spot_pool

__all__ = ["NodeAgent", "NodePool", "aks_like_pools", "default_pools", "gpu_pool", "spot_pool"]
