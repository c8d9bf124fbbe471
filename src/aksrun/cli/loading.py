"""Resolve `MODULE:FUNC` (or `path/to/file.py:FUNC`) and parse command-line arguments."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
from typing import Any

import click


def load_target(target: str) -> Any:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise click.UsageError(
            f"{target!r} is not MODULE:FUNC; e.g. `aksrun run examples.quickstart:square 3`."
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            path = os.path.abspath(module_name)
            if not os.path.isfile(path):
                raise click.UsageError(f"no file {module_name!r}.")
            name = os.path.splitext(os.path.basename(path))[0]
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.UsageError(f"cannot import {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.UsageError(f"{module_name!r} has no attribute {attr!r}.") from None
    if not callable(obj):
        raise click.UsageError(f"{target!r} is not a function.")
    return obj


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
