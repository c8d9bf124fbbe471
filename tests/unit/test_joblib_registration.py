"""`backend="aksrun"` is known to joblib from `import aksrun` on, whichever of aksrun and
joblib is imported first, without `import aksrun` importing joblib (or aksrun's backend module
before it is asked for). Each case needs a fresh interpreter: import order is the point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
{imports}
facts = {{"joblib_loaded": "joblib" in sys.modules,
          "backend_module_loaded": "aksrun.integrations.joblib_backend" in sys.modules,
          "hooks": [type(f).__name__ for f in sys.meta_path if "PostImport" in type(f).__name__]}}
if {use}:
    import joblib
    with joblib.parallel_config(backend="aksrun", memory="2Gi") as config:
        facts["config_backend"] = type(config["backend"]).__name__
        facts["memory"] = config["backend"].options.memory
    facts["parallel_backend"] = type(joblib.Parallel(n_jobs=2, backend="aksrun")._backend).__name__
    facts["hooks_after"] = [type(f).__name__ for f in sys.meta_path
                            if "PostImport" in type(f).__name__]
print(json.dumps(facts))
"""


def probe(imports: str, use: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(imports=imports, use=use)],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_import_aksrun_imports_neither_joblib_nor_the_backend():
    facts = probe("import aksrun", use=False)
    assert facts == {"joblib_loaded": False, "backend_module_loaded": False,
                     "hooks": ["_PostImportHook"]}


@pytest.mark.parametrize("imports", ["import aksrun\nimport joblib",
                                     "import joblib\nimport aksrun",
                                     "import aksrun\nimport sklearn.model_selection"],
                         ids=["aksrun-then-joblib", "joblib-then-aksrun", "aksrun-then-sklearn"])
def test_backend_aksrun_works_whichever_is_imported_first(imports):
    facts = probe(imports, use=True)
    assert facts["joblib_loaded"] is True
    assert facts["backend_module_loaded"] is False  # registered, not loaded until asked for
    assert facts["config_backend"] == "AksrunBackend" and facts["memory"] == "2Gi"
    assert facts["parallel_backend"] == "AksrunBackend"  # Parallel(backend=...) finds it too
    assert facts["hooks"] == [] and facts["hooks_after"] == []  # the hook removed itself


def test_the_hook_leaves_other_imports_and_joblib_itself_as_they_were():
    code = ("import aksrun, importlib.machinery as m, joblib, json\n"
            "print(json.dumps([type(joblib.__loader__).__name__, joblib.__spec__.origin,\n"
            "                  isinstance(joblib.__loader__, m.SourceFileLoader)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    loader, origin, is_source_loader = json.loads(out.stdout)
    assert loader == "SourceFileLoader" and is_source_loader
    assert origin.endswith(os.path.join("joblib", "__init__.py"))
