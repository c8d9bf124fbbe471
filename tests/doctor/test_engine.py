"""The engine alone: checks run in parallel, each after what it needs, each bounded in time;
a check whose need failed is skipped and says which; the report renders one line per check."""

from __future__ import annotations

import json
import threading
import time

from aksrun.core.config import load_config
from aksrun.doctor import report as render
from aksrun.doctor.claims import principal
from aksrun.doctor.context import Context
from aksrun.doctor.engine import run_checks
from aksrun.doctor.model import Check, Outcome, Report, Status


def context() -> Context:
    return Context(load_config(), timeout=2.0)


def test_independent_checks_run_at_the_same_time():
    barrier = threading.Barrier(3, timeout=1.0)

    def meet(_ctx):
        barrier.wait()  # raises BrokenBarrierError unless all three run at once
        return Outcome.ok("met")

    checks = [Check(f"c{i}", f"check {i}", meet) for i in range(3)]
    results = run_checks(checks, context(), timeout=2.0)
    assert [r.status for r in results] == [Status.OK] * 3


def test_a_check_waits_for_its_needs_and_reads_their_facts():
    def first(ctx):
        time.sleep(0.1)
        ctx.put("answer", 42)
        return Outcome.ok("found")

    def second(ctx):
        return Outcome.ok(f"read {ctx.get('answer')}")

    results = run_checks([Check("b", "second", second, ("a",)), Check("a", "first", first)],
                         context(), timeout=2.0)
    assert [r.id for r in results] == ["b", "a"]  # reported in the order given
    assert results[0].outcome.summary == "read 42"


def test_a_failed_need_skips_its_dependents_transitively_and_says_which():
    checks = [
        Check("a", "the cluster", lambda _c: Outcome.fail("down", "start it.")),
        Check("b", "namespace", lambda _c: Outcome.ok("never"), ("a",)),
        Check("c", "permissions", lambda _c: Outcome.ok("never"), ("b",)),
        Check("d", "store", lambda _c: Outcome.ok("fine")),
    ]
    results = {r.id: r for r in run_checks(checks, context(), timeout=2.0)}
    assert results["a"].status is Status.FAIL
    assert results["b"].status is Status.SKIP
    assert results["b"].outcome.summary == "skipped: needs the cluster, which failed"
    assert results["c"].outcome.summary == "skipped: needs namespace, which was skipped"
    assert results["d"].status is Status.OK


def test_needs_outside_the_plan_are_ignored():
    results = run_checks([Check("a", "a", lambda _c: Outcome.ok("ran"), ("not-planned",))],
                         context(), timeout=1.0)
    assert results[0].status is Status.OK


def test_a_check_that_hangs_fails_at_its_deadline_and_the_rest_still_report():
    release = threading.Event()

    def hang(_ctx):
        release.wait(30)
        return Outcome.ok("too late")

    checks = [Check("slow", "registry", hang, on_timeout="check the registry."),
              Check("after", "image", lambda _c: Outcome.ok("never"), ("slow",)),
              Check("fast", "store", lambda _c: Outcome.ok("fine"))]
    started = time.monotonic()
    results = {r.id: r for r in run_checks(checks, context(), timeout=0.5)}
    took = time.monotonic() - started
    release.set()
    assert 0.5 <= took < 2.0
    assert results["slow"].status is Status.FAIL
    assert results["slow"].outcome.summary == "no answer within 0.5 s"
    assert results["slow"].outcome.fix == "check the registry."
    assert results["after"].status is Status.SKIP
    assert results["fast"].status is Status.OK


def test_an_unexpected_exception_is_a_failed_check_not_a_crash():
    def boom(_ctx):
        raise KeyError("surprise")

    result = run_checks([Check("x", "x", boom)], context(), timeout=1.0)[0]
    assert result.status is Status.FAIL
    assert result.outcome.summary.startswith("unexpected KeyError")


def test_a_cycle_is_reported_not_spun_on():
    checks = [Check("a", "a", lambda _c: Outcome.ok(""), ("b",)),
              Check("b", "b", lambda _c: Outcome.ok(""), ("a",))]
    results = run_checks(checks, context(), timeout=1.0)
    assert {r.status for r in results} == {Status.SKIP}


def test_text_is_one_line_per_check_with_the_fix_and_json_has_everything():
    from aksrun.doctor.model import Result

    report = Report("aks", (
        Result("a", "credential", Outcome.ok("AzureCliCredential as user x"), 0.1),
        Result("b", "store", Outcome.fail("container missing", "create it."), 0.2),
        Result("c", "image", Outcome.skip("skipped: needs store, which failed"), 0.0),
    ), 1.25, "aks backend")
    text = render.text(report).splitlines()
    assert text == [
        "aksrun doctor: aks backend",
        "✓ credential: AzureCliCredential as user x",
        "✗ store: container missing — fix: create it.",
        "- image: skipped: needs store, which failed",
        "1 check failed, 1 skipped (1.2 s)",
    ]
    data = json.loads(render.as_json(report))
    assert data["ok"] is False and data["backend"] == "aks"
    assert [c["status"] for c in data["checks"]] == ["ok", "fail", "skip"]
    assert data["checks"][1]["fix"] == "create it."


def _jwt(claims: dict) -> str:
    import base64

    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{body}.sig"


def test_claims_name_a_person_by_upn_and_an_app_by_its_id():
    person = principal(_jwt({"upn": "alice@contoso.com", "oid": "o1", "tid": "t1"}))
    assert person.describe() == "user alice@contoso.com (object id o1, tenant t1)"
    app = principal(_jwt({"appid": "a1", "oid": "o2", "tid": "t2", "idtyp": "app"}))
    assert app.describe() == "application a1 (object id o2, tenant t2)"
    assert principal("not a jwt").name == "?"


IMPORT_PROBE = r"""
import json, sys, threading
first = {}
class Recorder:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("kubernetes", "azure", "requests", "urllib3", "msal"):
            first.setdefault(name, threading.current_thread().name)
        return None
sys.meta_path.insert(0, Recorder())
from aksrun.doctor import run_doctor
run_doctor(timeout=3)
# The client's lazily loaded models: each imports only what kubernetes.client already has.
leaf = ("kubernetes.client.models.", "kubernetes.client.api.")
print(json.dumps({n: t for n, t in first.items()
                  if t != "MainThread" and not n.startswith(leaf)}))
"""


def test_the_checks_import_nothing_heavy_at_the_same_time(tmp_path):
    """Two check threads importing kubernetes and azure-identity for the first time at once
    can each get a half-initialised module ("cannot import name ... circular import"): seen
    in a real run. Every heavy module is imported by one thread before the checks start."""
    import os
    import subprocess
    import sys

    closed = "127.0.0.1:9"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "
        f"'https://{closed}'}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: "
        "[{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n")
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJub25lIn0.e30.")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AKSRUN_"))}
    env.update({
        "AKSRUN_DOTENV": "0", "AKSRUN_HOME": str(tmp_path / "home"), "AKSRUN_USER": "alice",
        "AKSRUN_BACKEND": "kubernetes", "KUBECONFIG": str(kubeconfig),
        "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
        "AZURE_RESOURCE_GROUP": "rg", "AZURE_AKS_CLUSTER_NAME": "aks",
        "AKSRUN_ARM_ENDPOINT": f"https://{closed}", "AZURE_CONTAINER_REGISTRY": "aksrunacr",
        "AKSRUN_REGISTRY_LOGIN_SERVER": closed, "AKSRUN_STORE": "az://aksrun-alice",
        "AKSRUN_STORAGE_ACCOUNT_URL": f"https://{closed}/devstoreaccount1",
        # DefaultAzureCredential's workload-identity path only, to a port nobody serves
        "AZURE_TOKEN_CREDENTIALS": "WorkloadIdentityCredential",
        "AZURE_AUTHORITY_HOST": f"https://{closed}", "AZURE_TENANT_ID": "t",
        "AZURE_CLIENT_ID": "c", "AZURE_FEDERATED_TOKEN_FILE": str(token),
    })
    out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}
