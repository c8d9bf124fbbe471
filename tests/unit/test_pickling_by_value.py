"""The user's own modules travel inside the pickle; installed packages by reference."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

from aksrun.core.envelope import loads
from aksrun.core.pickling import dump_function


def _join(payload) -> bytes:
    return b"".join(bytes(p) for p in payload.parts)


def test_project_module_function_runs_where_the_module_does_not_exist(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "mylib_helpers.py").write_text("def twice(x):\n    return 2 * x\n")
    (project / "mylib_model.py").write_text(textwrap.dedent("""
        import mylib_helpers

        def predict(x):
            return mylib_helpers.twice(x) + 1
    """))
    monkeypatch.syspath_prepend(str(project))
    model = importlib.import_module("mylib_model")
    payload = dump_function(model.predict)
    blob = tmp_path / "fn.pkl"
    blob.write_bytes(_join(payload))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import sys; from aksrun.core.envelope import loads;"
            f"f = loads(open({str(blob)!r}, 'rb').read(), {payload.sha256!r}, 'fn');"
            "assert 'mylib_model' not in sys.modules; print(f(20))")
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "41"


def test_installed_packages_travel_by_reference():
    import json

    payload = dump_function(json.dumps)
    data = _join(payload)
    assert len(data) < 200 and b"json" in data
    assert loads(data, payload.sha256, "fn") is json.dumps


def test_functions_from_main_and_closures_travel_by_value():
    def outer(k):
        def inner(x):
            return x * k
        return inner

    payload = dump_function(outer(3))
    assert loads(_join(payload), payload.sha256, "fn")(5) == 15
