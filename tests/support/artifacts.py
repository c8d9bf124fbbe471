"""Debugging aids for end-to-end tests: the artifacts of a failed test, and verbose logging.

`artifact_collector` (function fixture): a target fixture hands it its `Target`
(`artifact_collector.track(target)`). When the test fails (in set-up or in its body), it saves
into `integration-artifacts/<test-node-name>/` (or `$AKSRUN_ARTIFACTS_DIR/<test-node-name>/`),
for every job the test created (`target.job_ids()`):

- `<job_id>/store/`: the job's objects from the store (`job.json`, `logs/*.log`, small
  pickles) and `keys.txt`, every key with its size;
- `<job_id>/kubernetes/` (Kubernetes compute): `job.yaml`, `pods/<pod>.yaml`,
  `pods/<pod>.log` (and `<pod>.previous.log` after a restart), and the namespace's events
  about that Job and its pods (`events.yaml`, `events.txt`);
- `<job_id>/local/` (local compute): the supervisor's job folder (launch.json, events.jsonl,
  each attempt's output.log);
- `summary.txt` (test, target, job ids, the failure) and `errors.txt` (what could not be
  collected: collecting never hides the test's own failure).

Then it runs the target's clean-up (for a failed test with `--integration-debug`, the jobs are
kept for inspection). The CI workflow uploads the directory when a test failed.

It knows the test failed through `pytest_runtest_makereport`, which stores each phase's report
on the item (`item.rep_setup`, `item.rep_call`, `item.rep_teardown`). The hook is defined here
(import it into a conftest, or list this module in `pytest_plugins`) and the fixture also
registers it on first use, so it is active wherever the fixture is used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.scenarios.target import Target

ARTIFACTS_ENV = "AKSRUN_ARTIFACTS_DIR"
REPO_ROOT = Path(__file__).resolve().parents[2]
# Read at import as well: the root conftest clears AKSRUN_* for every test.
_AMBIENT_ARTIFACTS_DIR = os.environ.get(ARTIFACTS_ENV)
MAX_COPIED_OBJECT = 5 * 1024 * 1024  # larger store objects are only listed
PLUGIN_NAME = "aksrun-artifact-reports"
DEBUG_LOGGERS = ("aksrun", "azure", "kubernetes", "urllib3")
_SAVED = pytest.StashKey[list[str]]()


# --- knowing that a test failed -------------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Store each phase's report on the item: `item.rep_setup`, `rep_call`, `rep_teardown`."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    saved = terminalreporter.config.stash.get(_SAVED, [])
    terminalreporter.config.stash[_SAVED] = []  # once, however many times this is registered
    if saved:
        terminalreporter.section("artifacts of failed tests")
        for line in saved:
            terminalreporter.write_line(line)


class _ReportPlugin:
    """The same two hooks, registered at run time by the fixture when no conftest did."""

    pytest_runtest_makereport = staticmethod(pytest_runtest_makereport)
    pytest_terminal_summary = staticmethod(pytest_terminal_summary)


def ensure_report_hook(config: pytest.Config) -> None:
    manager = config.pluginmanager
    if manager.get_plugin(PLUGIN_NAME) is None:
        manager.register(_ReportPlugin(), PLUGIN_NAME)


def failed_report(item: pytest.Item) -> pytest.TestReport | None:
    """The report of the phase that failed (set-up or the test itself), if one did."""
    for when in ("setup", "call"):
        report = getattr(item, f"rep_{when}", None)
        if report is not None and report.failed:
            return report
    return None


# --- where artifacts go ---------------------------------------------------------------------


def artifacts_root() -> Path:
    chosen = os.environ.get(ARTIFACTS_ENV) or _AMBIENT_ARTIFACTS_DIR
    return Path(chosen) if chosen else REPO_ROOT / "integration-artifacts"


def node_dirname(item: pytest.Item) -> str:
    """`test_job_lifecycle_on_aks[map_results_in_order]` -> a safe directory name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", item.name).strip("-.")
    return name[:200] or "test"


# --- the fixture ----------------------------------------------------------------------------


class ArtifactCollector:
    def __init__(self, item: pytest.Item, root: Path | None = None) -> None:
        self.item = item
        self.root = root or artifacts_root()
        self.targets: list[Target] = []
        self.errors: list[str] = []

    @property
    def directory(self) -> Path:
        return self.root / node_dirname(self.item)

    def track(self, target: Target) -> Target:
        if target not in self.targets:
            self.targets.append(target)
        return target

    def collect(self, report: pytest.TestReport | None = None) -> Path:
        """Save everything about the tracked targets' jobs; never raises."""
        directory = self.directory
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
        summary = [f"test: {self.item.nodeid}"]
        if report is not None:
            summary.append(f"failed in: {report.when}")
        for target in self.targets:
            job_ids = self._guard(f"listing the jobs of target {target.name}",
                                  target.job_ids) or list(target.jobs)
            summary += [
                f"target: {target.name}",
                f"  namespace: {target.namespace}",
                f"  store: {getattr(target.store, 'url', target.store)}",
                f"  tag: {target.tag}",
                *(f"  {key}: {value}" for key, value in target.details.items()),
                f"  jobs: {', '.join(job_ids) or '(none)'}",
            ]
            base = directory / target.name if len(self.targets) > 1 else directory
            for job_id in job_ids:
                self._guard(f"store objects of job {job_id}", collect_store_job,
                            target.store, job_id, base / job_id / "store")
                if target.collect is not None:
                    self._guard(f"{target.name} artifacts of job {job_id}", target.collect,
                                target, job_id, base / job_id)
                else:
                    self._guard(f"compute artifacts of job {job_id}", collect_compute_job,
                                target, job_id, base / job_id)
            self._guard("the storage scenarios' keys", _write_keys, target.store,
                        target.scratch(), base / "scratch-keys.txt")
        if report is not None:
            summary += ["", "failure:", report.longreprtext]
        (directory / "summary.txt").write_text("\n".join(summary) + "\n")
        if self.errors:
            (directory / "errors.txt").write_text("\n\n".join(self.errors) + "\n")
        return directory

    def cleanup(self) -> None:
        for target in self.targets:
            if target.cleanup is not None:
                try:
                    target.cleanup(target)
                except Exception as exc:
                    warnings.warn(f"clean-up of target {target.name} failed: {exc!r}",
                                  stacklevel=1)

    def _guard(self, what: str, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except Exception:
            self.errors.append(f"{what}:\n{traceback.format_exc()}")
            return None


@pytest.fixture
def artifact_collector(request: pytest.FixtureRequest) -> Iterator[ArtifactCollector]:
    """Collects the artifacts of the tracked targets' jobs when the test fails, then runs
    their clean-up."""
    ensure_report_hook(request.config)
    collector = ArtifactCollector(request.node)
    yield collector
    report = failed_report(request.node)
    keep = report is not None and bool(request.config.getoption("--integration-debug", False))
    try:
        if report is not None and collector.targets:
            where = collector.collect(report)
            request.config.stash.setdefault(_SAVED, []).append(f"{request.node.nodeid}: {where}")
    finally:
        if not keep:
            collector.cleanup()


# --- what gets collected --------------------------------------------------------------------


def collect_store_job(store: Any, job_id: str, directory: Path) -> None:
    """The job's store objects: all keys with sizes, and a copy of each small one."""
    directory.mkdir(parents=True, exist_ok=True)
    prefix = f"jobs/{job_id}/"
    lines = []
    for key in store.list(prefix):
        size = store.size(key)
        lines.append(f"{size:>12}  {key}")
        if size <= MAX_COPIED_OBJECT:
            path = directory / key[len(prefix):]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes(store.get(key)))
    (directory / "keys.txt").write_text("\n".join(lines) + "\n")


def _write_keys(store: Any, prefix: str, path: Path) -> None:
    keys = list(store.list(f"{prefix}/"))
    if keys:
        path.write_text("\n".join(keys) + "\n")


def collect_compute_job(target: Target, job_id: str, directory: Path) -> None:
    """What compute knows about the job, whichever compute the target's client uses."""
    from aksrun.api.session import default_client

    compute = (target.client or default_client()).compute
    if hasattr(compute, "api_client") and hasattr(compute, "namespace"):
        collect_kubernetes_job(compute.api_client, compute.namespace, job_id,
                               directory / "kubernetes")
        return
    handle = compute.attach(job_id)
    folder = handle.data.get("folder")
    if folder:
        _copy_regular_files(Path(folder), directory / "local")


def kubernetes_collector(api_client: Any, namespace: str):
    """A `Target.collect` for a Kubernetes target reached through `api_client`."""

    def collect(target: Target, job_id: str, directory: Path) -> None:
        collect_kubernetes_job(api_client, namespace, job_id, directory / "kubernetes")

    return collect


def collect_kubernetes_job(api_client: Any, namespace: str, job_id: str,
                           directory: Path) -> None:
    """The Job and pod manifests (YAML), every pod's log, and the namespace's events about
    the Job and its pods."""
    import yaml
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException

    from aksrun.adapters.kubernetes_manifest import RUNNER_CONTAINER, job_label_selector

    batch, core = k8s.BatchV1Api(api_client), k8s.CoreV1Api(api_client)
    directory.mkdir(parents=True, exist_ok=True)

    def dump(obj: Any) -> str:
        data = api_client.sanitize_for_serialization(obj)
        (data.get("metadata") or {}).pop("managedFields", None)
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)

    try:
        (directory / "job.yaml").write_text(dump(batch.read_namespaced_job(job_id, namespace)))
    except ApiException as exc:
        (directory / "job.yaml").write_text(f"# Job {job_id}: {exc.status} {exc.reason}\n")

    pods = core.list_namespaced_pod(namespace, label_selector=job_label_selector(job_id)).items
    (directory / "pods").mkdir(exist_ok=True)
    for pod in pods:
        name = pod.metadata.name
        (directory / "pods" / f"{name}.yaml").write_text(dump(pod))
        restarts = sum((s.restart_count or 0) for s in (pod.status.container_statuses or []))
        for previous in (False, True) if restarts else (False,):
            suffix = ".previous.log" if previous else ".log"
            try:
                text = core.read_namespaced_pod_log(name, namespace, container=RUNNER_CONTAINER,
                                                    previous=previous)
            except ApiException as exc:
                text = f"(no log: {exc.status} {exc.reason})\n"
            (directory / "pods" / f"{name}{suffix}").write_text(text or "")

    events = [
        e for e in core.list_namespaced_event(namespace).items
        if (e.involved_object.name or "") == job_id
        or (e.involved_object.name or "").startswith(f"{job_id}-")
    ]
    events.sort(key=lambda e: str(e.last_timestamp or e.event_time or e.first_timestamp or ""))
    (directory / "events.yaml").write_text(
        yaml.safe_dump([api_client.sanitize_for_serialization(e) for e in events],
                       sort_keys=False, default_flow_style=False))
    lines = [
        f"{e.last_timestamp or e.event_time or e.first_timestamp}  {e.type:<8} "
        f"{e.reason:<24} {e.involved_object.kind}/{e.involved_object.name}: {e.message}"
        for e in events
    ]
    (directory / "events.txt").write_text("\n".join(lines) + "\n")


def _copy_regular_files(source: Path, destination: Path) -> None:
    """Copy a folder's regular files only (a job folder may hold FIFOs, which would block)."""
    for folder, _dirs, files in os.walk(source):
        for name in files:
            path = Path(folder) / name
            with contextlib.suppress(OSError):
                if stat.S_ISREG(path.lstat().st_mode):
                    target = destination / path.relative_to(source)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)


# --- verbose logging ------------------------------------------------------------------------


class _LiveHandler(logging.Handler):
    """Writes records to the terminal while the test runs, with pytest's capture suspended
    for the write (as pytest's own live logging does)."""

    def __init__(self, config: pytest.Config) -> None:
        super().__init__(logging.DEBUG)
        self.capture = config.pluginmanager.get_plugin("capturemanager")
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            suspended = (self.capture.global_and_fixture_disabled() if self.capture is not None
                         else contextlib.nullcontext())
            with suspended:
                if self.reporter is not None:
                    self.reporter.write_line(text)
                else:
                    sys.__stderr__.write(text + "\n")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def verbose_logging(enabled: bool, config: pytest.Config | None = None) -> Iterator[bool]:
    """With `enabled`: DEBUG logs of aksrun, the Azure SDK (requests, identity) and the
    kubernetes client (requests and responses), live on the terminal, timestamped; they also
    reach the captured-log section of a failed test's report."""
    if not enabled:
        yield False
        return
    handler: logging.Handler = (_LiveHandler(config) if config is not None
                                else logging.StreamHandler(sys.__stderr__))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    saved = []
    for name in DEBUG_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield True
    finally:
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
