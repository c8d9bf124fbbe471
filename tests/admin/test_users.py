"""`aksrun admin add-user` / `remove-user` on the real test cluster and the strict fake ARM:
each person gets a namespace, an identity federated to its service account, a container and
the roles for exactly those; their kubeconfig runs jobs in their namespace and is refused in
anyone else's; removal takes exactly what was made for them."""

from __future__ import annotations

import uuid

import pytest

import aksrun
from aksrun.adapters.kubernetes_rbac import RULES
from aksrun.admin import roles
from tests.e2e import funcs
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.azurite, pytest.mark.timeout(600)]
ALICE, BOB = "alice@contoso.com", "bob@contoso.com"


def arm_writes(sub) -> int:
    return len([r for r in sub.arm.requests if r.method in ("PUT", "PATCH", "DELETE")])


def k8s(sub, api: str = "CoreV1Api"):
    from kubernetes import client

    return getattr(client, api)(sub.cluster.admin_client())


def namespace_gone(sub, name: str) -> bool:
    from kubernetes import client

    try:
        k8s(sub).read_namespace(name)
    except client.ApiException as exc:
        return exc.status == 404
    return False


def run_as(person_kubeconfig, namespace, monkeypatch, runner_image, azurite):
    from aksrun.api import session

    for name, value in {
        "AKSRUN_BACKEND": "kubernetes", "KUBECONFIG": str(person_kubeconfig),
        "AKSRUN_NAMESPACE": namespace, "AKSRUN_IMAGE": runner_image,
        "AKSRUN_STORE": f"az://k8s-{uuid.uuid4().hex[:12]}/aksrun",
        "AKSRUN_STORAGE_CONNECTION_STRING": azurite.connection_string,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(session, "_cached", None)
    return aksrun.function()(funcs.add)(2, b=3)


def test_alice_and_bob_each_get_their_own_namespace_identity_and_container(
        cluster_subscription, admin, users, runner_image, azurite, tmp_path, monkeypatch):
    sub = cluster_subscription
    sub.arm.role_propagation_delay = 2.0  # the wait loop must see both delays pass
    sub.arm.federation_delay = 1.5
    alice, bob = users("alice"), users("bob")
    alice_id, bob_id = sub.add_person(ALICE), sub.add_person(BOB)

    added = admin("add-user", alice, "--principal", ALICE, "--json")
    assert added.code == 0, added
    created = {s["kind"] for s in added.steps if s["state"] == "created"}
    assert created >= {"managed identity", "federated credential", "namespace",
                       "service account", "role", "role binding", "cluster role binding",
                       "blob container", "role assignment"}
    # The wait loop ran, showed why it waited, and ended when the probe passed.
    check = added.steps[-1]
    assert check["kind"] == "access check" and check["state"] == "ready", added
    assert "attempts)" in check["detail"]  # more than one: propagation was waited for
    assert f"waiting for {alice}'s identity to reach its container" in added.err
    assert "of at most 15m00s" in added.err
    assert "AADSTS70021" in added.err or "not effective yet" in added.err

    # Azure: the identity, its one federated credential, roles at the container only.
    identity = sub.identity(f"aksrun-{alice}")
    assert identity.tags == {"managed-by": "aksrun", "aksrun-user": alice}
    [fic] = identity.credentials.values()
    assert (fic.issuer, fic.subject, fic.audiences) == (
        sub.cluster.control_plane.url, f"system:serviceaccount:aksrun-{alice}:aksrun",
        ["api://AzureADTokenExchange"])
    container = sub.container_scope(f"aksrun-{alice}")
    for principal, kind in ((identity.principal_id, "ServicePrincipal"), (alice_id, "User")):
        on_container = sub.assignments(scope=container, principal=principal)
        assert [(a.role.name, a.principal_type) for a in on_container] == [
            ("Storage Blob Data Contributor", kind)]
        assert on_container[0].name == roles.assignment_name(
            container, roles.STORAGE_BLOB_DATA_CONTRIBUTOR, principal)
    assert [a.scope for a in sub.assignments(principal=identity.principal_id)] == [container]
    [kubeconfig_role] = sub.assignments(principal=alice_id, scope=sub.cluster_id)
    assert kubeconfig_role.role.name == "Azure Kubernetes Service Cluster User Role"
    assert sub.container_exists(f"aksrun-{alice}")

    # Kubernetes: the namespace, the annotated service account, aksrun's Role, the binding.
    ns = k8s(sub).read_namespace(f"aksrun-{alice}")
    assert ns.metadata.labels["aksrun.io/user"] == alice
    assert ns.metadata.annotations["aksrun.io/principal"] == alice_id
    account = k8s(sub).read_namespaced_service_account("aksrun", f"aksrun-{alice}")
    assert account.metadata.annotations["azure.workload.identity/client-id"] == \
        identity.client_id
    rbac = k8s(sub, "RbacAuthorizationV1Api")
    role = rbac.read_namespaced_role("aksrun-user", f"aksrun-{alice}")
    assert [r.verbs for r in role.rules] == [r["verbs"] for r in RULES]
    binding = rbac.read_namespaced_role_binding("aksrun-user", f"aksrun-{alice}")
    assert [(s.kind, s.name) for s in binding.subjects] == [("User", ALICE)]

    by_id = admin("add-user", bob, "--principal", bob_id)  # an object id works as well
    assert by_id.code == 0, by_id
    assert f"+ created      namespace              aksrun-{bob}" in by_id.out

    # Alice's own kubeconfig: a job runs in her namespace, and bob's refuses her.
    person = sub.person_kubeconfig(ALICE, tmp_path / "alice.kubeconfig")
    assert run_as(person, f"aksrun-{alice}", monkeypatch, runner_image, azurite) == 5
    with pytest.raises(aksrun.AksrunError) as refused:
        run_as(person, f"aksrun-{bob}", monkeypatch, runner_image, azurite)
    assert f"user {ALICE!r} may not create jobs.batch in namespace 'aksrun-{bob}'" in \
        str(refused.value)
    assert not k8s(sub, "BatchV1Api").list_namespaced_job(f"aksrun-{bob}").items

    # A second add-user finds everything, writes nothing, and says so.
    writes = arm_writes(sub)
    again = admin("add-user", alice, "--principal", ALICE)
    assert again.code == 0, again
    assert "already set up: nothing changed" in again.err, again.out
    assert "created" not in again.out and "changed" not in again.out
    assert "(1 attempt)" in again.out
    assert arm_writes(sub) == writes
    # ... and the name can't be taken over by someone else.
    taken = admin("add-user", alice, "--principal", BOB)
    assert taken.code == 2 and f"already belongs to principal {alice_id}" in taken.err

    removed = admin("remove-user", alice, "--json")
    assert removed.code == 0, removed
    gone = {(s["kind"], s["name"]) for s in removed.steps if s["state"] == "removed"}
    assert {("managed identity", f"aksrun-{alice}"), ("blob container", f"aksrun-{alice}"),
            ("federated credential", f"aksrun-{alice}-sa"), ("namespace", f"aksrun-{alice}"),
            ("cluster role binding", f"aksrun-node-reader-{alice}")} <= gone
    # cluster user, Reader on the identity, Storage Blob Data Contributor x2
    assert len([s for s in removed.steps if s["kind"] == "role assignment"]) == 4
    # Nothing of alice's is left ...
    assert sub.identity(f"aksrun-{alice}") is None
    assert sub.assignments(principal=alice_id) == []
    assert sub.assignments(principal=identity.principal_id) == []
    assert not sub.container_exists(f"aksrun-{alice}")
    wait_for(lambda: namespace_gone(sub, f"aksrun-{alice}"), timeout=90, interval=0.5)
    # ... and all of bob's is: add-user finds every piece.
    writes = arm_writes(sub)
    bob_again = admin("add-user", bob, "--principal", bob_id, "--no-wait", "--json")
    assert bob_again.code == 0, bob_again
    assert {s["state"] for s in bob_again.steps} == {"found", "skipped"}, bob_again
    assert arm_writes(sub) == writes

    twice = admin("remove-user", alice)
    assert twice.code == 0, twice
    assert f"no aksrun user {alice!r}" in twice.err and "nothing to remove" in twice.err


def test_on_an_azure_rbac_cluster_the_person_also_gets_the_namespace_scoped_role(
        make_subscription, admin, users, monkeypatch):
    sub = make_subscription(cluster=True, azure_rbac=True)
    carol = users("carol")
    carol_id = sub.add_person("carol@contoso.com")
    added = admin("add-user", carol, "--principal", "carol@contoso.com", "--no-wait")
    assert added.code == 0, added
    scope = f"{sub.cluster_id}/namespaces/aksrun-{carol}"
    [writer] = sub.assignments(scope=scope)
    assert (writer.role.name, writer.principal, writer.principal_type) == (
        "Azure Kubernetes Service RBAC Writer", carol_id, "User")
    removed = admin("remove-user", carol, "--json")
    assert removed.code == 0, removed
    assert sub.assignments(scope=scope) == [] and sub.assignments(principal=carol_id) == []


def test_a_failure_midway_leaves_a_state_that_running_again_completes(
        make_subscription, admin, users):
    sub = make_subscription(cluster=True)
    dave = users("dave")
    sub.add_person("dave@contoso.com")
    # The admin may assign roles on the cluster and write everything, but not assign roles
    # on the storage account: add-user gets as far as the container's role assignments.
    sub.arm.revoke(sub.admin_client_id)
    sub.arm.grant(sub.admin_client_id, "Contributor", f"/subscriptions/{sub.subscription_id}")
    sub.arm.grant(sub.admin_client_id, "Role Based Access Control Administrator", sub.cluster_id)
    failed = admin("add-user", dave, "--principal", "dave@contoso.com", "--no-wait")
    assert failed.code == 1, failed
    assert "was refused" in failed.err and "Role Based Access Control Administrator" in \
        failed.err
    assert sub.identity(f"aksrun-{dave}") is not None  # made before the failure
    sub.arm.grant_owner(sub.admin_client_id, sub.subscription_id)
    again = admin("add-user", dave, "--principal", "dave@contoso.com", "--no-wait", "--json")
    assert again.code == 0, again
    states = again.states()
    assert states[f"managed identity aksrun-{dave}"] == "found"
    # The first refused role assignment outside the cluster (Reader on dave's identity)
    # stopped it before the container: this run makes the rest.
    assert states[f"blob container aksrun-{dave}"] == "created"
    assert [s["state"] for s in again.steps if s["kind"] == "role assignment"
            and "Storage Blob" in s["name"]] == ["created", "created"]


def test_federated_credential_writes_wait_out_another_writer_on_the_same_identity(
        make_subscription, admin, users, monkeypatch):
    import threading
    import time

    from aksrun.admin import identity as identities

    monkeypatch.setattr(identities, "CONFLICT_WAIT", 0.3)
    sub = make_subscription(cluster=True)
    heidi = users("heidi")
    sub.add_person("heidi@contoso.com")
    made = sub.arm.add_identity(sub.subscription_id, sub.resource_group, f"aksrun-{heidi}",
                                tags={"managed-by": "aksrun", "aksrun-user": heidi})
    made.writing.acquire()  # another writer is busy on this identity ...

    def other_writer_finishes() -> None:  # ... until aksrun's write has met it
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not [
                r for r in sub.arm.requests
                if r.status == 409 and "federatedIdentityCredentials" in r.path]:
            time.sleep(0.05)
        made.writing.release()

    threading.Thread(target=other_writer_finishes, daemon=True).start()
    added = admin("add-user", heidi, "--principal", "heidi@contoso.com", "--no-wait")
    assert added.code == 0, added
    assert f"another write to identity aksrun-{heidi} is in progress" in added.err
    conflicts = [r for r in sub.arm.requests
                 if r.status == 409 and "federatedIdentityCredentials" in r.path]
    assert conflicts and "+ created      federated credential" in added.out
    assert len(made.credentials) == 1


def test_the_wait_gives_up_at_its_bound_and_a_rerun_waits_again(
        make_subscription, admin, users, monkeypatch):
    from aksrun.admin import probe

    monkeypatch.setattr(probe, "INTERVAL", 0.5)
    sub = make_subscription(cluster=True, role_propagation_delay=6)
    ivan = users("ivan")
    sub.add_person("ivan@contoso.com")
    timed_out = admin("add-user", ivan, "--principal", "ivan@contoso.com", "--wait", "2s")
    assert timed_out.code == 1, timed_out
    assert f"{ivan}'s identity could not reach container 'aksrun-{ivan}' within 2s" in \
        timed_out.err
    assert "not effective yet" in timed_out.err and "--wait" in timed_out.err
    # Run again (Azure is still propagating): everything is found, and it waits again.
    again = admin("add-user", ivan, "--principal", "ivan@contoso.com", "--json")
    assert again.code == 0, again
    assert {s["state"] for s in again.steps if "AcrPull" not in s["name"]} == {"found",
                                                                              "ready"}
    assert "attempts)" in again.steps[-1]["detail"]


def test_add_user_dry_run_plans_every_piece_and_makes_none(make_subscription, admin, users):
    sub = make_subscription(cluster=True)
    judy = users("judy")
    sub.add_person("judy@contoso.com")
    plan = admin("add-user", judy, "--principal", "judy@contoso.com", "--dry-run", "--json")
    assert plan.code == 0, plan
    states = plan.states()
    assert states[f"managed identity aksrun-{judy}"] == "would create"
    assert states[f"namespace aksrun-{judy}"] == "would create"
    assert states[f"blob container aksrun-{judy}"] == "would create"
    assert states[f"access check {judy}"] == "skipped"
    planned = [s for s in plan.steps if s["kind"] == "role assignment"
               and s["state"] == "would create"]
    assert len(planned) == 4  # cluster user, Reader on the identity, blob data x2 (no registry)
    assert not [r for r in sub.arm.requests if r.method in ("PUT", "DELETE")]
    assert sub.identity(f"aksrun-{judy}") is None
    from kubernetes import client

    with pytest.raises(client.ApiException):
        client.CoreV1Api(sub.cluster.admin_client()).read_namespace(f"aksrun-{judy}")


def test_the_person_may_pull_from_the_registry_until_removed(
        cluster_subscription, admin, users):
    """Their client looks the runner image up before a function's first call."""
    sub = cluster_subscription
    registry = sub.arm.add_registry(sub.subscription_id, sub.resource_group, "aksrunteamacr")
    registry.tags = {"managed-by": "aksrun"}
    kim = users("kim")
    kim_id = sub.add_person("kim@contoso.com")

    added = admin("add-user", kim, "--principal", "kim@contoso.com", "--no-wait", "--json")
    assert added.code == 0, added
    assert [s["state"] for s in added.steps if s["name"].startswith("AcrPull for ")] == [
        "created"]
    [pull] = sub.assignments(principal=kim_id, scope=registry.id)
    assert pull.role.name == "AcrPull" and pull.principal_type == "User"
    assert pull.name == roles.assignment_name(registry.id, roles.ACR_PULL, kim_id)
    printed = admin("add-user", kim, "--principal", "kim@contoso.com", "--no-wait")
    assert "--registry aksrunteamacr" in printed.err and f"--user {kim}" in printed.err

    removed = admin("remove-user", kim)
    assert removed.code == 0, removed
    assert sub.assignments(principal=kim_id, scope=registry.id) == []
