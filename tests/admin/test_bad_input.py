"""Bad input to the admin commands: each a typed error naming the fix (exit 2) or a no-op that
says so, and nothing written before the mistake was found."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.azurite


def writes(sub) -> list:
    return [r for r in sub.arm.requests if r.method in ("PUT", "PATCH", "DELETE")
            or (r.method == "POST" and "/list" not in r.path)]


@pytest.mark.parametrize("name", ["Alice", "bob_smith", "carol.c", "dave-", "a--b", "x" * 41])
def test_a_user_name_that_cannot_name_a_namespace_and_container_is_refused_at_once(
        subscription, admin, name):
    refused = admin("add-user", name, "--principal", "alice@contoso.com")
    assert refused.code == 2, refused
    assert f"user name {name!r} can't name a namespace" in refused.err
    assert "lowercase letters, digits and single '-'" in refused.err
    assert subscription.arm.requests == []  # not even a lookup
    assert admin("remove-user", name).code == 2


@pytest.mark.parametrize("principal, said", [
    ("nobody@contoso.com", "no principal 'nobody@contoso.com' among the Entra ID users"),
    ("0d5c7a4e-1111-4222-8333-944455556666",
     "among the Entra ID users, service principals or groups"),
    ("alice", "neither an Entra object id (a GUID) nor a user principal name"),
])
def test_a_principal_entra_does_not_know_is_refused_before_anything_is_written(
        subscription, admin, principal, said):
    subscription.add_person("alice@contoso.com")
    refused = admin("add-user", "alice", "--principal", principal)
    assert refused.code == 2, refused
    assert said in refused.err
    assert writes(subscription) == []


def test_without_graph_access_a_upn_needs_the_object_id(subscription, admin):
    subscription.add_person("alice@contoso.com")
    subscription.arm.graph_denied.add(subscription.admin_client_id)
    refused = admin("add-user", "alice", "--principal", "alice@contoso.com")
    assert refused.code == 2, refused
    assert "Microsoft Graph refused to look up 'alice@contoso.com'" in refused.err
    assert "give the person's object id" in refused.err


def test_a_resource_group_that_does_not_exist_is_named(subscription, admin):
    subscription.add_person("alice@contoso.com")
    refused = admin("add-user", "alice", "--principal", "alice@contoso.com",
                    "--resource-group", "rg-typo")
    assert refused.code == 2, refused
    assert "resource group 'rg-typo' does not exist" in refused.err
    assert writes(subscription) == []


def test_add_user_before_bootstrap_says_which_bootstrap_to_run(make_subscription, admin):
    off = make_subscription(workload_identity=False)
    off.add_person("alice@contoso.com")
    refused = admin("add-user", "alice", "--principal", "alice@contoso.com")
    assert refused.code == 2, refused
    assert "aksrun admin bootstrap --resource-group rg-aksrun-admin --cluster aks-aksrun " \
        "--enable-workload-identity" in refused.err
    assert writes(off) == []


def test_add_user_without_the_storage_account_says_to_bootstrap(make_subscription, admin):
    bare = make_subscription(storage_account=None)
    bare.add_person("alice@contoso.com")
    refused = admin("add-user", "alice", "--principal", "alice@contoso.com")
    assert refused.code == 2, refused
    assert "no storage account tagged by aksrun" in refused.err
    assert "aksrun admin bootstrap" in refused.err


@pytest.mark.cluster
def test_a_principal_arm_does_not_know_fails_before_anything_is_made(
        make_subscription, admin, users):
    # Graph can't be read (no directory rights), so only ARM can tell the id is nobody's:
    # its PrincipalNotFound comes with the first write, before any of the user's things.
    sub = make_subscription(cluster=True)
    sub.arm.graph_denied.add(sub.admin_client_id)
    erin = users("erin")
    refused = admin("add-user", erin, "--principal", "0d5c7a4e-1111-4222-8333-944455556666")
    assert refused.code == 2, refused
    assert "Azure knows no principal of that id" in refused.err
    assert sub.identity(f"aksrun-{erin}") is None
    assert sub.assignments() == []
    from kubernetes import client

    with pytest.raises(client.ApiException):
        client.CoreV1Api(sub.cluster.admin_client()).read_namespace(f"aksrun-{erin}")


@pytest.mark.cluster
def test_removing_a_user_that_does_not_exist_says_so_and_changes_nothing(
        make_subscription, admin, users):
    sub = make_subscription(cluster=True)
    nobody = users("nobody")
    said = admin("remove-user", nobody)
    assert said.code == 0, said
    assert f"no aksrun user {nobody!r} on cluster aks-aksrun: nothing to remove" in said.err
    assert writes(sub) == []
