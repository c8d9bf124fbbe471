"""The fake ACR over other backends: distribution's API alone (no storage folder), and a
registry serving TLS, as the image tests' registry does."""

from __future__ import annotations

import io

import pytest
from azure.containerregistry import ContainerRegistryClient
from azure.core.exceptions import HttpResponseError
from azure.identity import DefaultAzureCredential

from tests.support.fake_acr import FakeAcrFront, push_image, start_registry
from tests.support.fake_acr.fixtures import registry_unavailable
from tests.support.fake_acr.oci import digest_of


def test_api_only_front_lists_and_describes_but_cannot_untag(acr_backend, acr_tls, acr_identity):
    image = push_image(acr_backend.url, "app", "v1")
    push_image(acr_backend.url, "app", "v2", files={"b": b"2"})
    with FakeAcrFront(acr_backend.url, acr_tls.cert_file, acr_tls.key_file,
                      tenant_id=acr_identity.tenant_id) as front:
        front.grant(acr_identity.client_id, "Owner")
        with ContainerRegistryClient(front.endpoint, DefaultAzureCredential(),
                                     audience="https://containerregistry.azure.net") as acr:
            tags = [t.name for t in acr.list_tag_properties("app")]
            props = acr.get_manifest_properties("app", "v1")
            first_seen = acr.get_tag_properties("app", "v1").created_on
            again = acr.get_tag_properties("app", "v1").created_on
            with pytest.raises(HttpResponseError) as untag:
                acr.delete_tag("app", "v1")
            names = list(acr.list_repository_names())
    assert tags == ["v1", "v2"]
    assert props.digest == image.digest and props.architecture == "amd64"
    assert first_seen == again  # first-seen times are remembered
    assert untag.value.status_code == 405
    assert "backend_root" in untag.value.response.json()["errors"][0]["message"]
    assert names == ["app"]


def test_front_over_a_tls_registry(tmp_path, acr_tls, acr_identity):
    try:
        backend = start_registry(tmp_path / "tls-registry", cert_file=acr_tls.cert_file,
                                 key_file=acr_tls.key_file)
    except RuntimeError as exc:
        registry_unavailable(str(exc))
    with backend:
        assert backend.url.startswith("https://")
        image = push_image(backend.url, "secure/app", "v1", ca_file=backend.ca_file)
        with FakeAcrFront(backend.url, acr_tls.cert_file, acr_tls.key_file,
                          tenant_id=acr_identity.tenant_id, backend_root=backend.root,
                          backend_ca=backend.ca_file) as front:
            front.grant(acr_identity.client_id, "AcrPush")
            with ContainerRegistryClient(front.endpoint, DefaultAzureCredential(),
                                         audience="https://containerregistry.azure.net") as acr:
                props = acr.get_manifest_properties("secure/app", "v1")
                config = b"".join(acr.download_blob("secure/app", image.config_digest))
                pushed, _ = acr.upload_blob("secure/app", io.BytesIO(b"over tls"))
    assert props.digest == image.digest
    assert config == image.config
    assert pushed == digest_of(b"over tls")
