"""The fake ACR through the official client: `ContainerRegistryClient` + `DefaultAzureCredential`
(workload identity against FakeEntra), as aksrun talks to a real registry."""

from __future__ import annotations

import io
import json
import time

import pytest
from azure.containerregistry import ArtifactTagOrder, ContainerRegistryClient
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential

from tests.support.fake_acr import FakeAcrFront, push_image, push_index
from tests.support.fake_acr.oci import DOCKER_MANIFEST, OCI_MANIFEST, digest_of, make_layer

AUDIENCE = "https://containerregistry.azure.net"


def client(front: FakeAcrFront, audience: str = AUDIENCE) -> ContainerRegistryClient:
    return ContainerRegistryClient(front.endpoint, DefaultAzureCredential(), audience=audience)


def error_code(exc: Exception) -> str:
    return exc.response.json()["errors"][0]["code"]  # type: ignore[attr-defined]


def test_manifest_properties_by_tag_are_the_backends(fake_acr, acr_backend, acr_identity):
    image = push_image(acr_backend.url, "team/app", "v1", architecture="arm64")
    fake_acr.grant(acr_identity.client_id, "AcrPull")
    with client(fake_acr) as acr:
        props = acr.get_manifest_properties("team/app", "v1")
    assert props.digest == image.digest
    assert (props.architecture, props.operating_system) == ("arm64", "linux")
    assert props.tags == ["v1"]
    assert props.size_in_bytes == image.size
    assert props.repository_name == "team/app"
    assert props.created_on <= props.last_updated_on
    assert abs(props.created_on.timestamp() - time.time()) < 60


def test_missing_tag_and_repository_are_not_found(fake_acr, acr_backend, acr_identity):
    push_image(acr_backend.url, "team/app", "v1")
    fake_acr.grant(acr_identity.object_id(acr_identity.client_id), "AcrPull")  # by object id
    with client(fake_acr) as acr:
        with pytest.raises(ResourceNotFoundError) as missing_tag:
            acr.get_manifest_properties("team/app", "v2")
        with pytest.raises(ResourceNotFoundError) as missing_repo:
            acr.get_tag_properties("team/nothing", "v1")
        with pytest.raises(ResourceNotFoundError) as missing_manifest:
            acr.get_manifest_properties("team/app", digest_of(b"never pushed"))
    assert error_code(missing_tag.value) == "TAG_UNKNOWN"
    assert error_code(missing_repo.value) == "NAME_UNKNOWN"
    assert error_code(missing_manifest.value) == "MANIFEST_UNKNOWN"


def test_tag_listing_sorts_pages_and_orders_by_time(fake_acr, acr_backend, acr_identity):
    first = push_image(acr_backend.url, "app", "zeta")
    for tag in ("alpha", "mid"):
        time.sleep(0.02)
        push_image(acr_backend.url, "app", tag)
    fake_acr.grant(acr_identity.client_id, "AcrPull")
    with client(fake_acr) as acr:
        by_name = list(acr.list_tag_properties("app"))
        fake_acr.clear_requests()
        paged = [t.name for t in acr.list_tag_properties("app", results_per_page=1)]
        page_requests = fake_acr.count("GET", "/acr/v1/app/_tags", 200)
        newest_first = [t.name for t in acr.list_tag_properties(
            "app", order_by=ArtifactTagOrder.LAST_UPDATED_ON_DESCENDING)]
        of_first = [t.name for t in acr.list_tag_properties("app", digest=first.digest)]
    assert [t.name for t in by_name] == ["alpha", "mid", "zeta"]
    assert paged == ["alpha", "mid", "zeta"]
    assert page_requests == 3  # one per page, following Link headers
    assert newest_first == ["mid", "alpha", "zeta"]
    assert of_first == ["zeta"]
    assert all(t.can_delete and t.can_read and t.can_write and t.can_list for t in by_name)


def test_repointed_tag_keeps_created_time_and_moves_updated(fake_acr, acr_backend, acr_identity):
    push_image(acr_backend.url, "app", "v1", files={"a": b"1"})
    fake_acr.grant(acr_identity.client_id, "AcrPull")
    with client(fake_acr) as acr:
        before = acr.get_tag_properties("app", "v1")
        time.sleep(0.05)
        second = push_image(acr_backend.url, "app", "v1", files={"a": b"2"})
        after = acr.get_tag_properties("app", "v1")
    assert after.digest == second.digest != before.digest
    assert after.created_on == before.created_on
    assert after.last_updated_on > before.last_updated_on


def test_repository_listing_pages(fake_acr, acr_backend, acr_identity):
    for name in ("b/two", "a/one", "c"):
        push_image(acr_backend.url, name, "v1")
    fake_acr.grant(acr_identity.client_id, "Reader")
    with client(fake_acr) as acr:
        names = list(acr.list_repository_names())
        fake_acr.clear_requests()
        paged = list(acr.list_repository_names(results_per_page=2))
    assert names == ["a/one", "b/two", "c"]
    assert paged == names
    assert fake_acr.count("GET", "/acr/v1/_catalog", 200) == 2


def test_manifest_listing_has_untagged_images_and_index_children(
    fake_acr, acr_backend, acr_identity
):
    tagged = push_image(acr_backend.url, "multi", "single")
    untagged = push_image(acr_backend.url, "multi", None, files={"x": b"untagged"})
    index = push_index(acr_backend.url, "multi", "all", [("linux", "amd64"), ("linux", "arm64")])
    fake_acr.grant(acr_identity.client_id, "AcrPull")
    with client(fake_acr) as acr:
        listed = {m.digest: m for m in acr.list_manifest_properties("multi")}
        index_props = acr.get_manifest_properties("multi", "all")
    expected = {tagged.digest, untagged.digest, index.digest, *(c.digest for c in index.children)}
    assert set(listed) == expected
    assert listed[tagged.digest].tags == ["single"]
    assert listed[untagged.digest].tags is None  # ACR drops the array from untagged ones
    assert listed[index.children[1].digest].architecture == "arm64"
    assert index_props.architecture is None and index_props.tags == ["all"]
    assert index_props.size_in_bytes == index.size


def test_get_manifest_and_download_blobs(fake_acr, acr_backend, acr_identity):
    image = push_image(acr_backend.url, "app", "v1")
    fake_acr.grant(acr_identity.client_id, "AcrPull")
    with client(fake_acr) as acr:
        result = acr.get_manifest("app", "v1")
        config = b"".join(acr.download_blob("app", result.manifest["config"]["digest"]))
        layer = b"".join(acr.download_blob("app", image.layer_digests[0]))
    assert result.digest == image.digest
    assert result.media_type == OCI_MANIFEST
    assert config == image.config
    assert json.loads(config)["architecture"] == "amd64"
    assert digest_of(layer) == image.layer_digests[0]


def test_docker_v2_images_keep_their_media_type(fake_acr, acr_backend, acr_identity):
    image = push_image(acr_backend.url, "legacy", "v1", docker=True, architecture="386")
    fake_acr.grant(acr_identity.client_id, "AcrPull")
    with client(fake_acr) as acr:
        result = acr.get_manifest("legacy", "v1")
        props = acr.get_manifest_properties("legacy", "v1")
    assert result.media_type == DOCKER_MANIFEST and result.digest == image.digest
    assert props.architecture == "386"


def test_delete_tag_needs_delete_permission_and_removes_only_that_tag(
    fake_acr, acr_backend, acr_identity
):
    image = push_image(acr_backend.url, "app", "keep", files={"same": b"1"})
    same = push_image(acr_backend.url, "app", "drop", files={"same": b"1"})
    assert same.digest == image.digest  # one manifest, two tags
    fake_acr.grant(acr_identity.client_id, "AcrPush")
    with client(fake_acr) as acr:
        with pytest.raises(ClientAuthenticationError):
            acr.delete_tag("app", "drop")  # AcrPush has no delete
        fake_acr.grant(acr_identity.client_id, "AcrDelete")
        acr.delete_tag("app", "drop")
        with pytest.raises(ResourceNotFoundError):
            acr.get_tag_properties("app", "drop")
        kept = acr.get_manifest_properties("app", "keep")
        acr.delete_tag("app", "drop")  # already gone: the SDK takes ACR's 404 quietly
    assert kept.digest == image.digest and kept.tags == ["keep"]
    assert fake_acr.count("DELETE", "/acr/v1/app/_tags/drop", 202) == 1
    assert fake_acr.count("DELETE", "/acr/v1/app/_tags/drop", 404) == 1


def test_delete_manifest_removes_all_its_tags(fake_acr, acr_backend, acr_identity):
    image = push_image(acr_backend.url, "app", "a", files={"same": b"1"})
    push_image(acr_backend.url, "app", "b", files={"same": b"1"})
    other = push_image(acr_backend.url, "app", "c", files={"other": b"1"})
    fake_acr.grant(acr_identity.client_id, "Owner")
    with client(fake_acr) as acr:
        acr.delete_manifest("app", "a")
        left = [t.name for t in acr.list_tag_properties("app")]
        digests = [m.digest for m in acr.list_manifest_properties("app")]
    assert left == ["c"]
    assert digests == [other.digest]
    assert fake_acr.count("DELETE", f"/v2/app/manifests/{image.digest}", 202) == 1


def test_repository_properties_and_deletion(fake_acr, acr_backend, acr_identity):
    push_image(acr_backend.url, "gone", "v1")
    push_image(acr_backend.url, "gone", "v2", files={"b": b"2"})
    push_image(acr_backend.url, "stays", "v1")
    fake_acr.grant(acr_identity.client_id, "Owner")
    with client(fake_acr) as acr:
        props = acr.get_repository_properties("gone")
        acr.delete_repository("gone")
        names = list(acr.list_repository_names())
        with pytest.raises(ResourceNotFoundError):
            acr.get_repository_properties("gone")
    assert (props.name, props.tag_count, props.manifest_count) == ("gone", 2, 2)
    assert names == ["stays"]


def test_push_through_the_front_needs_acr_push(fake_acr, acr_backend, acr_identity):
    layer, diff_id = make_layer({"f": b"pushed through the front"})
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    fake_acr.grant(acr_identity.client_id, "AcrPull")
    with client(fake_acr) as acr, pytest.raises(ClientAuthenticationError):
        acr.upload_blob("pushed", io.BytesIO(config))
    fake_acr.grant(acr_identity.client_id, "AcrPush")
    with client(fake_acr) as acr:
        config_digest, config_size = acr.upload_blob("pushed", io.BytesIO(config))
        layer_digest, layer_size = acr.upload_blob("pushed", io.BytesIO(layer))
        manifest = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": layer_size}],
        }
        digest = acr.set_manifest("pushed", manifest, tag="v1")
        props = acr.get_manifest_properties("pushed", "v1")
    assert config_digest == digest_of(config) and layer_digest == digest_of(layer)
    assert props.digest == digest and props.architecture == "amd64"


def test_wrong_audience_is_refused_unless_arm_tokens_are_allowed(
    fake_acr, acr_backend, acr_identity, acr_tls
):
    push_image(acr_backend.url, "app", "v1")
    fake_acr.grant(acr_identity.client_id, "AcrPull")
    with client(fake_acr, audience="https://management.azure.com") as acr, pytest.raises(
        ClientAuthenticationError
    ):
        acr.get_tag_properties("app", "v1")
    assert fake_acr.count("POST", "/oauth2/exchange", 401) == 1
    assert fake_acr.count("POST", "/oauth2/token") == 0
    with FakeAcrFront(acr_backend.url, acr_tls.cert_file, acr_tls.key_file,
                      tenant_id=acr_identity.tenant_id, backend_root=acr_backend.root,
                      arm_audience_tokens=True) as lenient:
        lenient.grant(acr_identity.client_id, "AcrPull")
        with client(lenient, audience="https://management.azure.com") as acr:
            assert acr.get_tag_properties("app", "v1").name == "v1"


def test_audience_with_trailing_slash_is_accepted(fake_acr, acr_backend, acr_identity):
    push_image(acr_backend.url, "app", "v1")
    fake_acr.grant(acr_identity.client_id, "AcrPull")
    with client(fake_acr, audience=AUDIENCE + "/") as acr:
        assert acr.get_tag_properties("app", "v1").name == "v1"


def test_principal_without_a_role_is_denied(
    fake_acr, acr_backend, acr_identity, monkeypatch
):
    push_image(acr_backend.url, "app", "v1")
    fake_acr.grant(acr_identity.client_id, "Owner")
    monkeypatch.setenv("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
    with client(fake_acr) as acr:
        with pytest.raises(ClientAuthenticationError):
            acr.get_tag_properties("app", "v1")
        with pytest.raises(ClientAuthenticationError):
            list(acr.list_repository_names())
    # the Entra token is fine (exchange succeeds); ACR refuses the scope at /oauth2/token
    assert fake_acr.count("POST", "/oauth2/exchange", 200) == 2
    assert fake_acr.count("POST", "/oauth2/token", 401) == 2
    assert fake_acr.count(status=200, prefix="/acr/") == 0


def test_one_sdk_call_costs_a_challenge_and_a_token_exchange(fake_acr, acr_backend, acr_identity):
    image = push_image(acr_backend.url, "app", "v1")
    fake_acr.grant(acr_identity.client_id, "AcrPull")
    with client(fake_acr) as acr:
        acr.get_tag_properties("app", "v1")
        first = fake_acr.requests
        fake_acr.clear_requests()
        acr.download_blob("app", image.config_digest)
        second = fake_acr.requests
    assert first == [
        ("GET", "/acr/v1/app/_tags/v1", 401),
        ("POST", "/oauth2/exchange", 200),
        ("POST", "/oauth2/token", 200),
        ("GET", "/acr/v1/app/_tags/v1", 200),
    ]
    # the SDK keeps no token between calls: every call starts with a 401 challenge
    assert [(r.method, r.status) for r in second] == [
        ("GET", 401), ("POST", 200), ("POST", 200), ("GET", 206),
    ]
    assert fake_acr.count(prefix="/v2/") == 2
