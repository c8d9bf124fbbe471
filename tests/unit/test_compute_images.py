"""Which image KubernetesCompute puts in a Job, and what it refuses."""

from __future__ import annotations

import pytest

from aksrun.core.options import make_options
from aksrun.errors import ConfigError


def compute(**kwargs):
    from kubernetes import client

    from aksrun.adapters.kubernetes_compute import KubernetesCompute

    return KubernetesCompute(client.ApiClient(), "ns", **kwargs)


def test_fixed_image_and_the_functions_own():
    c = compute(image="r.io/runner@sha256:" + "1" * 64)
    assert c.image_of(make_options()) == "r.io/runner@sha256:" + "1" * 64
    assert c.image_of(make_options(image="r.io/mine:2")) == "r.io/mine:2"


def test_requirements_without_a_registry_are_refused_before_anything_runs():
    c = compute(image="r.io/runner:1")
    with pytest.raises(ConfigError, match="AZURE_CONTAINER_REGISTRY"):
        c.prepare(make_options(requirements=["pandas"]))


def test_no_image_at_all_names_both_settings():
    with pytest.raises(ConfigError) as info:
        compute().image_of(make_options())
    assert "AKSRUN_IMAGE" in str(info.value) and "AZURE_CONTAINER_REGISTRY" in str(info.value)


def test_the_resolver_is_asked_once_per_distinct_need():
    asked = []

    def image_for(options):
        asked.append(options.requirements)
        return f"r.io/aksrun-env@sha256:{len(asked):064d}"

    c = compute(image_for=image_for)
    first = c.image_of(make_options(requirements=["pandas"]))
    assert c.image_of(make_options(requirements=["pandas"], cpu="2")) == first
    assert c.image_of(make_options(requirements=["numpy"])) != first
    assert asked == [("pandas",), ("numpy",)]
