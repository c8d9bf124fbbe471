"""The cluster tier runs aksrun's pods in the real runner image (built from this client by
buildah, pulled from the test registry by the node agent): so these prove the image itself
has the right Python, aksrun and cloudpickle, runs as uid 1000 and works with a read-only
root, as it must on AKS."""

from __future__ import annotations

import sys
from pathlib import Path

import cloudpickle
import pytest

import aksrun

pytestmark = [pytest.mark.cluster, pytest.mark.azurite]


def inside(host_path: str = "/") -> dict:
    """What the pod sees of itself (runs remotely, by value: this module is not installed)."""
    import os
    import sys

    import cloudpickle

    import aksrun

    try:
        with open("/written-by-the-call", "w") as out:
            out.write("x")
        root = "writable"
    except OSError as exc:
        root = exc.strerror
    return {"executable": sys.executable, "prefix": sys.prefix, "python": sys.version,
            "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
            "root": root, "cwd": os.getcwd(), "home": os.environ.get("HOME"),
            "aksrun": aksrun.__version__, "aksrun_file": aksrun.__file__,
            "cloudpickle": cloudpickle.__version__,
            "tmp_writable": os.access("/tmp", os.W_OK),
            "host_path_visible": os.path.exists(host_path)}


def test_the_pod_runs_the_image_interpreter_as_uid_1000_on_a_read_only_root(k8s):
    seen = aksrun.function()(inside)(str(Path(aksrun.__file__).parent))
    assert seen["executable"].startswith("/opt/aksrun/bin/python")  # the image's venv
    assert seen["prefix"] == "/opt/aksrun" and seen["executable"] != sys.executable
    assert seen["aksrun_file"].startswith("/opt/aksrun/lib/python3.11/site-packages/aksrun/")
    assert not seen["host_path_visible"]  # the image's files, not this machine's
    assert seen["python"].split()[0].rsplit(".", 1)[0] == "3.11"
    assert (seen["uid"], seen["gid"]) == (1000, 1000) and 1000 in seen["groups"]
    assert seen["root"] == "Read-only file system"
    assert seen["tmp_writable"] and seen["cwd"] == "/work" and seen["home"] == "/home/aksrun"
    assert seen["aksrun"] == aksrun.__version__
    assert seen["cloudpickle"] == cloudpickle.__version__


def test_the_job_references_the_image_by_digest_and_the_pod_reports_it(k8s, runner_image):
    assert aksrun.function()(inside)()["uid"] == 1000
    [pod] = k8s.pods()
    [status] = pod["status"]["containerStatuses"]
    assert pod["spec"]["containers"][0]["image"] == runner_image
    assert status["imageID"] == runner_image  # the registry's digest, as containerd says
    events = k8s.admin_api().list_namespaced_event(k8s.namespace).items
    pulls = [e.message for e in events if e.reason in ("Pulled", "Pulling")]
    assert any(f'image "{runner_image}"' in m for m in pulls), pulls


def test_an_image_the_registry_lacks_is_err_image_pull_naming_it(k8s, runner_image):
    missing = runner_image.split("/", 1)[0] + "/aksrun-runner:not-built"
    remote = aksrun.function(image=missing)(inside)
    with pytest.raises(aksrun.JobFailedError) as info:
        remote()
    text = str(info.value)
    assert missing in text
    assert "ErrImagePull" in text or "ImagePullBackOff" in text
