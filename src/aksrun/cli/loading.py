"""Resolve `MODULE:FUNC` (or `path/to/file.py:FUNC`) and parse command-line arguments."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
from typing import Any

import click

from ..errors import ConfigError


def load_target(target: str) -> Any:
    """Import `MODULE:FUNC`; a module that fails to import becomes one ConfigError line (the
    module, the file:line that failed, the exception and the fix), not a traceback: the
    user's mistake is in their file, and aksrun's frames only bury it."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise click.UsageError(
            f"{target!r} is not MODULE:FUNC; e.g. `aksrun run examples.quickstart:square 3`."
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if module_name.endswith(".py") or os.sep in module_name:
        module = _import_file(module_name)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                raise click.UsageError(
                    f"cannot import {module_name!r}: {exc}; check the name, and run aksrun "
                    "from your project's directory (or install the package)."
                ) from None
            raise _import_failed(module_name, exc) from None
        except Exception as exc:
            raise _import_failed(module_name, exc) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.UsageError(f"{module_name!r} has no attribute {attr!r}.") from None
    if not callable(obj):
        raise click.UsageError(f"{target!r} is not a function.")
    return obj


def _import_file(given: str) -> Any:
    path = os.path.abspath(given)
    if not os.path.isfile(path):
        raise click.UsageError(f"no file {given!r}.")
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise click.UsageError(f"{given!r} is not a Python file; give a .py file or a module.")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        # A half-run module must not stay importable under its name.
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise _import_failed(given, exc) from None
    return module


def _import_failed(module_name: str, exc: BaseException) -> ConfigError:
    """What failed, where, and what to do, on one line."""
    if isinstance(exc, SyntaxError) and exc.filename:
        detail = (exc.msg or "invalid syntax").strip()
        where = f"{exc.filename}:{exc.lineno}" if exc.lineno else exc.filename
        return ConfigError(
            f"cannot import {module_name!r}: {type(exc).__name__} at {where}: {detail}. "
            "Fix the syntax there, then run again."
        )
    where = _where_raised(exc)
    message = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        fix = (f"install {exc.name.split('.')[0]!r} in this environment (or remove that "
               "import), then run again.")
    elif module_name.endswith(".py") or os.sep in module_name:
        fix = "fix it there, then run again."
    else:
        fix = (f"fix it there, then run again (`python -c 'import {module_name}'` shows the "
               "full traceback).")
    return ConfigError(f"cannot import {module_name!r}: {where or 'its import'} raised {text}; "
                       f"{fix}")


def _where_raised(exc: BaseException) -> str | None:
    """The innermost frame of the user's code (importlib's own frames are frozen modules)."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<") and f.filename != __file__
              and not f.filename.endswith(os.path.join("importlib", "__init__.py"))]
    if not frames:
        return None
    return f"{frames[-1].filename}:{frames[-1].lineno}"


def parse_args(values: tuple[str, ...]) -> tuple[list[Any], dict[str, Any]]:
    """Python literals where they parse (`3`, `[1, 2]`, `{'a': 1}`), strings otherwise;
    `name=value` becomes a keyword argument."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for text in values:
        key, eq, rest = text.partition("=")
        if eq and key.isidentifier():
            kwargs[key] = _literal(rest)
        elif kwargs:
            raise click.UsageError(f"positional argument {text!r} follows keyword arguments.")
        else:
            args.append(_literal(text))
    return args, kwargs


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
