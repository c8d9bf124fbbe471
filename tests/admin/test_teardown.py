"""`aksrun admin teardown`: every user and what bootstrap created go; what aksrun did not
create stays; a second teardown finds nothing; without --yes nothing happens."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.azurite, pytest.mark.timeout(600)]


def test_teardown_removes_what_aksrun_made_and_nothing_else(make_subscription, admin, users):
    sub = make_subscription(cluster=True, storage_account=None)
    # Someone's own account in the same group, and a hand-made role assignment on it.
    sub.arm.add_storage_account(sub.subscription_id, sub.resource_group, "teamstore",
                                blob_endpoint=sub.gate.url)
    made = admin("bootstrap", "--no-image", "--json")
    assert made.code == 0, made
    account = next(s["name"] for s in made.steps if s["kind"] == "storage account")
    registry = next(s["name"] for s in made.steps if s["kind"] == "container registry")
    frank, grace = users("frank"), users("grace")
    for user in (frank, grace):
        sub.add_person(f"{user}@contoso.com")
        added = admin("add-user", user, "--principal", f"{user}@contoso.com", "--no-wait")
        assert added.code == 0, added

    asked = admin("teardown")  # not a terminal, no --yes: the plan, then a refusal
    assert asked.code == 2, asked
    assert "would remove" in asked.out and "pass --yes" in asked.err
    assert sub.identity(f"aksrun-{frank}") is not None

    gone = admin("teardown", "--yes", "--json")
    assert gone.code == 0, gone
    removed = {(s["kind"], s["name"]) for s in gone.steps if s["state"] == "removed"}
    assert {("storage account", account), ("container registry", registry),
            ("managed identity", f"aksrun-{frank}"), ("managed identity", f"aksrun-{grace}"),
            ("namespace", f"aksrun-{frank}"), ("namespace", f"aksrun-{grace}")} <= removed
    assert sub.assignments() == []  # AcrPull, the users' and their identities' roles
    assert sub.account(account) is None and sub.account("teamstore") is not None
    assert sub.arm.provider("Microsoft.ContainerRegistry").registry(
        sub.subscription_id, sub.resource_group, registry) is None
    assert sub.managed_cluster().workload_identity  # left on
    node_reader = next(s for s in gone.steps if s["kind"] == "cluster role")
    assert node_reader["state"] == "removed" or "still bound by" in node_reader["detail"]

    again = admin("teardown", "--yes", "--json")
    assert again.code == 0, again
    assert not [s for s in again.steps if s["state"] == "removed"], again
