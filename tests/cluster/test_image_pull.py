"""Image pulls as a real node sees them: a throttled registry (429) is retried by the kubelet
and the job goes on; an image that isn't there fails the job at once (issue 11, item 8)."""

from __future__ import annotations

import pytest

import aksrun
from aksrun.api.session import default_client
from aksrun.errors import JobFailedError
from tests.support.cluster_fixtures import use_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@aksrun.function(cpu="100m", memory="128Mi")
def echo(x):
    return x


@pytest.fixture
def fresh_pull(request, monkeypatch, runner_image):
    """The cluster, with the runner image gone from every node (the next pod pulls it)."""
    setup = use_cluster(request, monkeypatch)
    from aksrun.api import session

    monkeypatch.setattr(session, "_cached", None)
    agent = setup.cluster.agent
    agent.forget_image(runner_image)
    request.addfinalizer(lambda: agent.throttle_pulls(runner_image, 0))
    return setup, agent


def test_a_throttled_pull_is_retried_and_the_job_completes(fresh_pull, runner_image):
    setup, agent = fresh_pull
    agent.throttle_pulls(runner_image, 2)
    assert echo("through") == "through"
    reasons = [e.reason for e in setup.admin_api().list_namespaced_event(setup.namespace).items]
    assert reasons.count("Failed") >= 2 and "Pulled" in reasons  # it did fail, then pulled


def test_a_pull_that_keeps_failing_fails_the_job_after_the_patience(fresh_pull, runner_image):
    _setup, agent = fresh_pull
    agent.throttle_pulls(runner_image, 1000)
    default_client().compute.pull_patience = 3.0
    with pytest.raises(JobFailedError) as info:
        echo("never")
    text = str(info.value)
    assert "could not be pulled for 3 s of retries" in text and "429" in text
