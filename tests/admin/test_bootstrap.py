"""`aksrun admin bootstrap` against the strict fake ARM: creates what is missing with secure
defaults, finds everything on a second run, changes nothing with --dry-run, and touches the
cluster only to turn workload identity on when asked."""

from __future__ import annotations

import pytest

from aksrun.admin import roles

pytestmark = pytest.mark.azurite


def writes(subscription) -> list:
    return [r for r in subscription.arm.requests
            if r.method in ("PUT", "PATCH", "DELETE", "POST") and "/list" not in r.path
            and r.path.startswith("/subscriptions/")]


def test_a_fresh_resource_group_gets_an_account_a_registry_and_acrpull_then_all_is_found(
        make_subscription, admin):
    sub = make_subscription(storage_account=None)
    first = admin("bootstrap", "--no-image", "--json")
    assert first.code == 0, first
    states = first.states()
    [account] = [s["name"] for s in first.steps if s["kind"] == "storage account"]
    [registry] = [s["name"] for s in first.steps if s["kind"] == "container registry"]
    assert states == {
        "workload identity aks-aksrun": "found",
        f"storage account {account}": "created",
        f"container registry {registry}": "created",
        "role assignment AcrPull for the cluster's kubelet identity": "created",
        "runner image aksrun-runner": "skipped",
    }
    made = sub.account(account)
    assert made.tags == {"managed-by": "aksrun"}
    assert (made.properties["minimumTlsVersion"], made.properties["allowBlobPublicAccess"],
            made.properties["allowSharedKeyAccess"]) == ("TLS1_2", False, False)
    acr = sub.arm.provider("Microsoft.ContainerRegistry").registry(
        sub.subscription_id, sub.resource_group, registry)
    assert acr is not None and acr.sku == "Standard"
    kubelet = sub.managed_cluster().kubelet_object_id
    [pull] = sub.assignments(principal=kubelet)
    assert pull.role.name == "AcrPull" and pull.scope.lower().endswith(
        f"/registries/{registry}".lower())
    assert pull.principal_type == "ServicePrincipal"
    assert pull.name == roles.assignment_name(pull.scope, roles.ACR_PULL, kubelet)

    before = len(writes(sub))
    again = admin("bootstrap", "--no-image", "--json")
    assert again.code == 0, again
    assert {s["state"] for s in again.steps} == {"found", "skipped"}
    assert len(writes(sub)) == before  # nothing written the second time
    assert len(sub.assignments(principal=kubelet)) == 1

    text = admin("bootstrap", "--no-image")
    assert text.code == 0 and "✓ found" in text.out and account in text.out
    assert "is ready for aksrun" in text.err


def test_dry_run_prints_the_plan_and_writes_nothing(make_subscription, admin):
    sub = make_subscription(storage_account=None, workload_identity=False)
    plan = admin("bootstrap", "--no-image", "--dry-run", "--enable-workload-identity", "--json")
    assert plan.code == 0, plan
    assert [s["state"] for s in plan.steps] == [
        "would change", "would create", "would create", "would create", "skipped"]
    assert writes(sub) == []
    assert not sub.managed_cluster().oidc_enabled
    assert sub.arm.provider("Microsoft.Storage")._accounts == {}
    shown = admin("bootstrap", "--no-image", "--dry-run", "--enable-workload-identity")
    assert "would create" in shown.out and "would be ready" in shown.err


def test_workload_identity_off_is_said_then_enabled_only_with_the_flag(make_subscription, admin):
    sub = make_subscription(workload_identity=False)
    told = admin("bootstrap", "--no-image")
    assert told.code == 1, told
    assert "✗ missing" in told.out and "--enable-workload-identity" in told.err
    cluster = sub.managed_cluster()
    assert not cluster.oidc_enabled and not cluster.workload_identity
    assert not [r for r in sub.arm.requests if r.method == "PUT" and "managedClusters" in r.path]
    etag, spec = cluster.etag, dict(cluster.spec)

    enabled = admin("bootstrap", "--no-image", "--enable-workload-identity", "--json")
    assert enabled.code == 0, enabled
    step = enabled.steps[0]
    assert step["state"] == "changed" and sub.arm.endpoint not in step["detail"]
    assert f"OIDC issuer {cluster.issuer_url}" in step["detail"]
    cluster = sub.managed_cluster()
    assert cluster.oidc_enabled and cluster.workload_identity and cluster.etag != etag
    assert cluster.spec == spec  # the fake refuses (400) any other change; none was sent
    assert admin("bootstrap", "--no-image", "--json").steps[0]["state"] == "found"


def test_a_missing_resource_group_is_a_usage_error_naming_it(subscription, admin):
    missing = admin("bootstrap", "--no-image", "--resource-group", "rg-nope")
    assert missing.code == 2, missing
    assert "resource group 'rg-nope' does not exist" in missing.err
    assert "az group create" in missing.err
    assert writes(subscription) == []


def test_an_unknown_cluster_is_a_usage_error_naming_it(subscription, admin):
    missing = admin("bootstrap", "--no-image", "--cluster", "aks-nope")
    assert missing.code == 2, missing
    assert "no AKS cluster 'aks-nope'" in missing.err


def test_a_storage_account_name_taken_elsewhere_says_to_pick_another(make_subscription, admin):
    sub = make_subscription(storage_account=None)
    sub.arm.provider("Microsoft.Storage").taken_names.add("takenbyothers")
    taken = admin("bootstrap", "--no-image", "--storage-account", "takenbyothers")
    assert taken.code == 2, taken
    assert "'takenbyothers' is taken" in taken.err and "--storage-account" in taken.err


def test_an_existing_account_not_made_by_aksrun_is_used_as_it_is(make_subscription, admin):
    sub = make_subscription(storage_account=None)
    sub.arm.add_storage_account(sub.subscription_id, sub.resource_group, "teamstore",
                                blob_endpoint=sub.gate.url, allow_shared_key_access=True)
    found = admin("bootstrap", "--no-image", "--storage-account", "teamstore", "--json")
    assert found.code == 0, found
    step = next(s for s in found.steps if s["kind"] == "storage account")
    assert step["state"] == "found" and "not created by aksrun" in step["detail"]
    assert "shared-key access on" in step["detail"]
    assert sub.account("teamstore").properties["allowSharedKeyAccess"] is True


@pytest.mark.timeout(900)
def test_the_runner_image_is_built_with_acr_tasks_once_then_found(
        make_subscription, acr_stack, admin, monkeypatch, tmp_path):
    """The registry's ACR Tasks build with buildah (tests/support/images) and its data plane
    is the ACR stand-in in front of the session's registry, as in `aksrun image build`."""
    from aksrun.images.resolve import forget_known_images
    from tests.support.acr_stack import own_registry_access

    registry = acr_stack.images.registry
    sub = make_subscription(executor=own_registry_access(
        acr_stack.images.executor, acr_stack.front.login_server, registry.login_server))
    sub.arm.add_registry(sub.subscription_id, sub.resource_group, "aksrunimages",
                         login_server=acr_stack.front.login_server)
    for name in ("AKSRUN_BASE_IMAGE", "AKSRUN_PIP_INDEX_URL", "AKSRUN_PIP_EXTRA_INDEX_URL"):
        monkeypatch.setenv(name, acr_stack.env[name])
    monkeypatch.setenv("AKSRUN_HOME", str(tmp_path / "home"))

    def image_step():
        forget_known_images()  # each run asks the registry, as a new process would
        run = admin("bootstrap", "--registry", "aksrunimages", "--json")
        assert run.code == 0, run
        return next(s for s in run.steps if s["kind"] == "runner image")

    builds = len(sub.arm.calls("POST", "/scheduleRun"))
    first = image_step()
    server = acr_stack.front.login_server
    assert first["name"].startswith(f"{server}/aksrun-runner@sha256:")
    assert first["state"] in ("created", "found")
    assert len(sub.arm.calls("POST", "/scheduleRun")) == builds + (first["state"] == "created")
    second = image_step()
    assert second == {**first, "state": "found", "detail": ""}
    assert len(sub.arm.calls("POST", "/scheduleRun")) == builds + (first["state"] == "created")


def test_an_admin_signed_in_under_a_shared_login_name_is_not_refused(
        subscription, admin, monkeypatch):
    """`root` on a jump box or in CI: the user check guards a person's own namespace, and
    the admin commands name other people's."""
    import getpass

    monkeypatch.delenv("AKSRUN_USER", raising=False)
    monkeypatch.setattr(getpass, "getuser", lambda: "root")
    run = admin("bootstrap", "--no-image", "--dry-run")
    assert run.code == 0, run
    assert "login name" not in run.err
