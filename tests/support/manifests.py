"""Validate Job manifests the way the API server would: the real OpenAPI schemas of every
Kubernetes minor version AKS supports (strict: unknown fields fail) and the official
client's models (pydantic, extra fields forbidden)."""

from __future__ import annotations

import functools
import json
from typing import Any

AKS_KUBERNETES_VERSIONS = ("1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0", "1.36.0",
                           "1.37.0")


@functools.cache
def _validator():
    import kubernetes_validate
    from kubernetes_validate.utils import all_versions

    missing = [v for v in AKS_KUBERNETES_VERSIONS if v not in set(all_versions())]
    assert not missing, f"kubernetes-validate has no schemas for {missing}; upgrade it"
    return kubernetes_validate


def assert_valid_job(job: dict[str, Any]) -> None:
    """Fail with the version and path of the first violation."""
    from kubernetes.client import ApiClient, V1Job

    validate = _validator()
    for version in AKS_KUBERNETES_VERSIONS:
        try:
            used = validate.validate(job, version, strict=True)
        except validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            raise AssertionError(f"invalid for Kubernetes {version} at {path}: {exc.message}")
        assert used == version.rsplit(".", 1)[0], f"schema fallback for {version}"
    strict = V1Job.model_validate(job)
    api = ApiClient()
    assert api.sanitize_for_serialization(strict) == json.loads(json.dumps(job))
