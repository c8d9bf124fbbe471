"""Fixtures of the admin tests: a fake subscription per test (tests/support/subscription.py)
with its settings in the environment, and `admin(...)`, the `aksrun admin` command run in
this process (the way a shell runs it, minus the process: exit code, stdout, stderr)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.support.azure_fixtures import OAuthAzurite
from tests.support.subscription import FakeSubscription, start_subscription


def _apply(subscription: FakeSubscription, monkeypatch: pytest.MonkeyPatch) -> None:
    from aksrun.admin import principals
    from aksrun.core.config import Config

    for name, value in subscription.env.items():
        monkeypatch.setenv(name, value)
    if "graph_endpoint" not in {f.name for f in dataclasses.fields(Config)}:
        # Until the settings know AKSRUN_GRAPH_ENDPOINT / _AUDIENCE: what they would say.
        endpoint = subscription.env["AKSRUN_GRAPH_ENDPOINT"]
        audience = subscription.env["AKSRUN_GRAPH_AUDIENCE"]
        monkeypatch.setattr(principals, "graph_settings", lambda config: (endpoint, audience))


@pytest.fixture
def make_subscription(workload_identity_env: OAuthAzurite, monkeypatch: pytest.MonkeyPatch,
                      request: pytest.FixtureRequest) -> Iterator[Callable[..., FakeSubscription]]:
    """`make_subscription(cluster=False, **options)`: a fake subscription (see
    start_subscription) whose settings are in the environment for this test."""
    from aksrun.admin import context

    monkeypatch.setattr(context, "POLLING_INTERVAL", 0.2)  # LROs without Retry-After
    made: list[FakeSubscription] = []

    def make(cluster: bool = False, **options: Any) -> FakeSubscription:
        test_cluster = request.getfixturevalue("test_cluster") if cluster else None
        subscription = start_subscription(workload_identity_env, test_cluster, **options)
        made.append(subscription)
        _apply(subscription, monkeypatch)
        return subscription

    yield make
    for subscription in made:
        subscription.stop()
    for subscription in made:
        assert subscription.arm.server_errors == []


@pytest.fixture
def subscription(make_subscription: Callable[..., FakeSubscription]) -> FakeSubscription:
    """A subscription whose cluster is no real one: for the ARM-only steps (bootstrap)."""
    return make_subscription()


@pytest.fixture
def cluster_subscription(make_subscription: Callable[..., FakeSubscription],
                         monkeypatch: pytest.MonkeyPatch) -> FakeSubscription:
    """A subscription whose managed cluster is the real test cluster."""
    from aksrun.admin import probe

    monkeypatch.setattr(probe, "INTERVAL", 0.5)
    return make_subscription(cluster=True)


@pytest.fixture
def users(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """`users("alice")` -> a user name unique to this test ("alice-3f9c1a"): the test cluster
    lives for the whole session and a removed namespace takes a while to go. Namespaces and
    bindings of these users are removed after the test."""
    suffix = uuid.uuid4().hex[:6]
    names: list[str] = []

    def name(base: str) -> str:
        names.append(f"{base}-{suffix}")
        return names[-1]

    yield name
    if names and "test_cluster" in request.fixturenames:
        cluster = request.getfixturevalue("test_cluster")
        from kubernetes import client

        rbac = client.RbacAuthorizationV1Api(cluster.admin_client())
        for user in names:
            cluster.delete_namespace(f"aksrun-{user}")
            try:
                rbac.delete_cluster_role_binding(f"aksrun-node-reader-{user}")
            except client.ApiException:
                pass


@dataclasses.dataclass
class Run:
    """One `aksrun admin ...` run: its exit code and output; `.steps` for --json runs."""

    result: Result

    @property
    def code(self) -> int:
        return self.result.exit_code

    @property
    def out(self) -> str:
        return self.result.stdout

    @property
    def err(self) -> str:
        return self.result.stderr

    @property
    def steps(self) -> list[dict[str, str]]:
        return json.loads(self.out)

    def states(self, kind: str | None = None) -> dict[str, str]:
        """'kind name' (or name, for one kind) -> state."""
        return {(s["name"] if kind else f"{s['kind']} {s['name']}"): s["state"]
                for s in self.steps if kind is None or s["kind"] == kind}

    def __repr__(self) -> str:  # what pytest shows when an assertion on a run fails
        return f"<exit {self.code}>\nstdout:\n{self.out}\nstderr:\n{self.err}"


@pytest.fixture
def admin() -> Callable[..., Run]:
    from aksrun.cli.admin import register
    from aksrun.cli.main import cli

    if "admin" not in cli.commands:
        register(cli)

    def run(*args: str) -> Run:
        return Run(CliRunner().invoke(cli, ["admin", *args], catch_exceptions=False))

    return run
