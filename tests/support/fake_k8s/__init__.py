"""A strict fake Kubernetes API server for tests (stdlib + PyYAML only).

The official `kubernetes` client talks to it over HTTP through an ordinary kubeconfig; its
job controller implements batch/v1 Indexed Job semantics and its kubelet runs each pod's
container command as a local subprocess. It knows nothing about the code under test.

    with FakeCluster() as cluster:
        cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace="default")
        ...
"""

from .cluster import FakeCluster
from .objects import ApiError, compress_indexes, parse_quantity
from .scheduler import NodePool, gpu_pool, spot_pool

__all__ = ["ApiError", "FakeCluster", "NodePool", "compress_indexes", "gpu_pool",
           "parse_quantity", "spot_pool"]
