"""Makes `backend="aksrun"` known to joblib from `import aksrun` on, without importing joblib.

joblib keeps its backends in a registry filled by `register_parallel_backend`; an unknown name
given to `parallel_config` or `Parallel` is an error. Importing joblib here to register would
cost every `import aksrun` about 100 ms, for users who never use joblib. So:

- joblib already imported: register at once.
- otherwise a finder at the front of `sys.meta_path` waits for joblib's first import and
  registers right after joblib's own module has run (a post-import hook: it never changes
  what is imported, and removes itself once it has registered).

What is registered is a factory that imports the backend module on first use, so even a
process that imports joblib (scikit-learn does) pays for aksrun's backend only when it asks
for it. `register_parallel_backend`, rather than joblib's EXTERNAL_BACKENDS table, because
joblib consults that table only in `parallel_config`: `Parallel(backend="aksrun")` would not
find it there.
"""

from __future__ import annotations

import sys

BACKEND_NAME = "aksrun"
_WATCHED = "joblib"


def make_backend(*args, **options):  # type: ignore[no-untyped-def]
    """joblib's factory for `backend="aksrun"`: the options given to `parallel_config` are
    aksrun function options (cpu, memory, ...), validated there."""
    from .joblib_backend import AksrunBackend

    return AksrunBackend(*args, **options)


def register() -> None:
    """Register `backend="aksrun"` with joblib (imports joblib)."""
    from joblib.parallel import register_parallel_backend

    register_parallel_backend(BACKEND_NAME, make_backend)


class _PostImportHook:
    """A meta path finder that finds nothing itself: for joblib it asks the finders after it
    for joblib's spec and has the spec's loader register aksrun once joblib has executed."""

    def __init__(self) -> None:
        self._finding = False  # our own find_spec of joblib below must not see us again

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname != _WATCHED or self._finding:
            return None
        import importlib.util

        self._finding = True  # imports of one name are serialized by the import lock
        try:
            spec = importlib.util.find_spec(fullname)
        except Exception:
            return None  # let the import system report it as it would without us
        finally:
            self._finding = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        execute = spec.loader.exec_module

        def exec_module(module):  # type: ignore[no-untyped-def]
            execute(module)
            _register_after_import(self)

        try:
            spec.loader.exec_module = exec_module  # this spec's own loader instance only
        except (AttributeError, TypeError):
            return None  # a loader we can't extend: joblib imports as usual, unregistered
        return spec


def _register_after_import(hook: _PostImportHook) -> None:
    if _register_or_warn() and hook in sys.meta_path:
        sys.meta_path.remove(hook)


def _register_or_warn() -> bool:
    """Never break the user's `import joblib` (or `import aksrun`) over this."""
    try:
        register()
    except Exception as exc:
        import warnings

        warnings.warn(f"aksrun could not register its joblib backend ({exc}); call "
                      "aksrun.integrations.joblib_registration.register() once joblib is "
                      "imported.", RuntimeWarning, stacklevel=4)
        return False
    return True


def install() -> None:
    """Called by `import aksrun`: register now if joblib is loaded, else when it is."""
    if "joblib.parallel" in sys.modules:
        _register_or_warn()
        return
    if not any(isinstance(finder, _PostImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PostImportHook())
