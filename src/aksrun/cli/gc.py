"""`aksrun gc`: what finished jobs left behind, removed (or listed with --dry-run)."""

from __future__ import annotations

import json

import click


@click.command("gc")
@click.option("--older-than", "older_than", default="7d", show_default=True,
              help='Remove jobs that ended longer ago than this, e.g. "7d", "12h".')
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def gc(older_than: str, dry_run: bool, as_json: bool) -> None:
    """Remove finished jobs (store objects and Kubernetes Jobs) and unreferenced functions."""
    from ..api.session import default_client
    from ..core.quantities import parse_duration
    from ..gc.collect import collect

    seconds = parse_duration(older_than, "--older-than")
    report = collect(default_client(), seconds or 0.0, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {len(report.jobs)} finished job(s) and {len(report.functions)} "
               f"unreferenced function object(s): {report.objects} objects, "
               f"{report.bytes / 1e6:.1f} MB; kept {report.kept_active} job(s) still running "
               f"or newer than {older_than}.")
    for job_id in report.jobs:
        click.echo(f"  {job_id}")
    if report.compute_only:
        click.echo(f"{verb} {len(report.compute_only)} Kubernetes Job(s) whose store records "
                   "were already gone.")
    for line in report.unreadable:
        click.echo(f"skipped (unreadable): {line}", err=True)
