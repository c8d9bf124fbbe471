"""The admin commands' pure parts: role-assignment names, the cluster update that touches
only workload identity, the wait loop's bound and progress, and input checks that need no
Azure at all."""

from __future__ import annotations

import copy
import types

import pytest

from aksrun.admin import probe, roles
from aksrun.admin.errors import PrincipalNotFoundError, PropagationTimeoutError
from aksrun.admin.steps import CREATED, FOUND, StepLog
from aksrun.errors import ConfigError

SCOPE = ("/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/"
         "Microsoft.Storage/storageAccounts/acct/blobServices/default/containers/aksrun-alice")
PRINCIPAL = "7b0e8f4c-2d1a-4c3b-9e8f-0a1b2c3d4e5f"


def test_role_assignment_names_are_deterministic_guids_per_scope_role_and_principal():
    name = roles.assignment_name(SCOPE, roles.STORAGE_BLOB_DATA_CONTRIBUTOR, PRINCIPAL)
    assert name == roles.assignment_name(SCOPE.upper() + "/", roles.STORAGE_BLOB_DATA_CONTRIBUTOR,
                                         PRINCIPAL.upper())  # ARM ids are case-insensitive
    others = {roles.assignment_name(SCOPE + "x", roles.STORAGE_BLOB_DATA_CONTRIBUTOR, PRINCIPAL),
              roles.assignment_name(SCOPE, roles.ACR_PULL, PRINCIPAL),
              roles.assignment_name(SCOPE, roles.STORAGE_BLOB_DATA_CONTRIBUTOR, "0" * 36)}
    assert name not in others and len(others) == 3
    assert len(name) == 36 and name.count("-") == 4


def test_removal_recognises_only_assignments_named_as_aksrun_names_them():
    def assignment(name, scope=SCOPE):
        return types.SimpleNamespace(
            name=name, scope=scope, principal_id=PRINCIPAL,
            role_definition_id=roles.role_definition_id("sub", roles.STORAGE_BLOB_DATA_CONTRIBUTOR))

    ours = roles.assignment_name(SCOPE, roles.STORAGE_BLOB_DATA_CONTRIBUTOR, PRINCIPAL)
    assert roles._is_aksrun(assignment(ours), SCOPE)
    assert not roles._is_aksrun(assignment("1f2e3d4c-0000-4000-8000-000000000000"), SCOPE)
    parent = SCOPE.rsplit("/blobServices", 1)[0]
    assert not roles._is_aksrun(assignment(ours, scope=parent), SCOPE)  # inherited


def test_steps_reach_the_callback_as_they_happen_and_say_whether_anything_changed():
    seen = []
    log = StepLog(seen.append)
    log.add("namespace", "aksrun-alice", FOUND)
    assert not log.changed and [s.name for s in seen] == ["aksrun-alice"]
    log.add("managed identity", "aksrun-alice", CREATED, "client id x")
    assert log.changed and seen[-1].as_dict() == {
        "kind": "managed identity", "name": "aksrun-alice", "state": "created",
        "detail": "client id x"}


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def _target():
    return probe.ProbeTarget("alice", "tenant", "client", "https://127.0.0.1:1/acct",
                             "aksrun-alice")


def test_the_wait_loop_shows_why_it_waits_and_returns_once_the_probe_passes(monkeypatch):
    outcomes = ["AADSTS70021: No matching federated identity record found",
                "the container answers AuthorizationPermissionMismatch", None]

    def probe_once(target, token):
        outcome = outcomes.pop(0)
        if outcome:
            raise probe.NotYet(outcome)

    monkeypatch.setattr(probe, "probe_once", probe_once)
    clock, progress = _Clock(), []
    waited, attempts = probe.wait_until_reachable(_target(), lambda: "t", timeout=60,
                                                  interval=5, on_progress=progress.append,
                                                  clock=clock, sleep=clock.sleep)
    assert (waited, attempts) == (10.0, 3)
    assert "AADSTS70021" in progress[0] and "of at most 1m00s" in progress[0]
    assert "AuthorizationPermissionMismatch" in progress[1]


def test_the_wait_loop_gives_up_at_its_bound_naming_it_and_the_last_reason(monkeypatch):
    def probe_once(target, token):
        raise probe.NotYet("the container answers 403")

    monkeypatch.setattr(probe, "probe_once", probe_once)
    clock = _Clock()
    with pytest.raises(PropagationTimeoutError) as caught:
        probe.wait_until_reachable(_target(), lambda: "t", timeout=30, interval=5,
                                   clock=clock, sleep=clock.sleep)
    message = str(caught.value)
    assert "within 30s" in message and "answers 403" in message and "--wait" in message
    assert clock.now <= 30
    assert isinstance(caught.value, TimeoutError)


@pytest.mark.parametrize("principal", ["", "alice", "not-a-guid-1234"])
def test_a_principal_that_is_neither_an_object_id_nor_a_upn_fails_before_any_call(principal):
    from aksrun.admin import principals

    with pytest.raises(PrincipalNotFoundError) as caught:
        principals.resolve(types.SimpleNamespace(), object(), principal)
    assert "object id" in str(caught.value)
    assert isinstance(caught.value, ConfigError)


def test_enabling_workload_identity_sends_back_the_cluster_read_with_two_fields_changed():
    from azure.mgmt.containerservice import models

    from aksrun.admin import cluster

    read = models.ManagedCluster({
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/"
              "managedClusters/c", "name": "c", "location": "westeurope",
        "tags": {"team": "ml"}, "eTag": "\"abc\"",
        "properties": {
            "kubernetesVersion": "1.33.2", "dnsPrefix": "c",
            "agentPoolProfiles": [{"name": "system", "count": 3, "vmSize": "Standard_D4s_v5"}],
            "oidcIssuerProfile": {"enabled": False},
            "securityProfile": {"defender": {"securityMonitoring": {"enabled": True}}},
            "aadProfile": {"managed": True, "enableAzureRBAC": True},
        }})
    before = copy.deepcopy(dict(read))
    sent = {}

    class Poller:
        def result(self):
            return None

    class Clusters:
        def begin_create_or_update(self, group, name, body, **kwargs):
            sent.update(group=group, name=name, body=copy.deepcopy(dict(body)), kwargs=kwargs)
            return Poller()

    ctx = types.SimpleNamespace(
        target=types.SimpleNamespace(resource_group="rg", cluster_name="c",
                                     where=lambda: {}),
        containerservice=types.SimpleNamespace(managed_clusters=Clusters()),
        on_progress=lambda text: None)
    cluster._enable(ctx, read)
    expected = copy.deepcopy(before)
    expected["properties"]["oidcIssuerProfile"]["enabled"] = True
    expected["properties"]["securityProfile"]["workloadIdentity"] = {"enabled": True}
    assert sent["body"] == expected  # defender, pools, Entra settings: all as they were
    assert sent["kwargs"]["etag"] == "\"abc\""  # a change made meanwhile is refused
