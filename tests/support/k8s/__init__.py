"""The real Kubernetes control plane of the cluster test tier: built from the pinned upstream
Go modules (build.py), started on 127.0.0.1 with fresh certificates (control_plane.py, pki.py),
combined with the node agent into a test cluster with per-user namespaces (cluster.py)."""
