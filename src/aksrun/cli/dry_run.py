"""`aksrun run --dry-run`: the exact Job manifest a submission would create, as YAML."""

from __future__ import annotations

from typing import Any

import click

from ..errors import ConfigError


def print_manifest(remote: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Pickle and plan the call as `submit` would (so bad arguments fail the same way), then
    render the Job from configuration alone: nothing is uploaded, nothing is created."""
    _require_manifest_extras()
    from ..adapters.kubernetes_compute import redact, render_job_for_config
    from ..adapters.kubernetes_manifest import to_yaml
    from ..core.config import load_config
    from ..core.lifecycle import plan_job

    config = load_config()
    plan = plan_job(
        remote.func, [(tuple(args), kwargs)], remote.options, kind="call",
        store_url=config.store_url, user=config.user, backend=config.backend,
        parallel=config.max_parallel or 1,
    )
    click.echo(redact(to_yaml(render_job_for_config(plan.request, config))), nl=False)


def _require_manifest_extras() -> None:
    """Rendering a Job needs the Kubernetes adapter and PyYAML, which come with the `azure`
    extra, not with the local-only install: say so before any work, not as a traceback
    from deep inside the renderer."""
    try:
        import yaml  # noqa: F401

        from ..adapters import kubernetes_compute  # noqa: F401
    except ImportError as exc:
        missing = {"yaml": "PyYAML"}.get(exc.name or "", exc.name or "a Kubernetes dependency")
        raise ConfigError(
            f"aksrun run --dry-run renders a Kubernetes Job as YAML and needs the Azure extras "
            f"({missing} is missing); install them with: pip install 'aksrun[azure]'."
        ) from None
