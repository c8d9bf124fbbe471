"""`aksrun doctor` and `aksrun init`: check a set-up, and write one.

Exit codes: 0 everything passed (init: written, and doctor passed), 1 a check failed (init:
the file differs and --force was not given, or doctor failed), 2 usage error.
"""

from __future__ import annotations

import sys

import click

EXIT_FAILED, EXIT_USAGE = 1, 2


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--timeout", type=click.FloatRange(min=0.5), default=None,
              help="Seconds each check may take (default 10).")
def doctor(as_json: bool, timeout: float | None) -> None:
    """Check credentials, cluster, identity, permissions, store and images: one line each,
    with the fix for anything that fails. Exit 0 when all pass, 1 otherwise."""
    from ..doctor import DEFAULT_TIMEOUT, run_doctor

    report = run_doctor(timeout=timeout or DEFAULT_TIMEOUT)
    _print_report(report, as_json)
    if not report.ok:
        sys.exit(EXIT_FAILED)


def _print_report(report, as_json: bool) -> None:
    from ..doctor import report as render

    if as_json:
        click.echo(render.as_json(report))
    else:
        click.echo(render.text(report, colour=sys.stdout.isatty()))


@click.command("init")
@click.option("--subscription", "subscription_id", help="Subscription id (AZURE_SUBSCRIPTION_ID).")
@click.option("--resource-group", "resource_group",
              help="Resource group of the cluster (AZURE_RESOURCE_GROUP).")
@click.option("--cluster", "cluster_name", help="AKS cluster (default: found in the group).")
@click.option("--storage-account", "storage_account",
              help="Storage account (default: found in the group).")
@click.option("--registry", help="Container registry (default: found in the group).")
@click.option("--registry-resource-group", "registry_resource_group",
              help="The registry's resource group, if not the cluster's.")
@click.option("--user", help="Your aksrun user name, as `aksrun admin add-user` was given it.")
@click.option("--namespace", help="Kubernetes namespace (default aksrun-<user>).")
@click.option("--pyproject", is_flag=True,
              help="Write [tool.aksrun] into ./pyproject.toml instead of ./aksrun.toml.")
@click.option("--force", is_flag=True, help="Replace settings in an existing file.")
@click.option("--no-doctor", is_flag=True, help="Don't run `aksrun doctor` afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Doctor's report as JSON.")
def init(pyproject: bool, force: bool, no_doctor: bool, as_json: bool, **flags: str | None
         ) -> None:
    """Find your cluster, storage account, registry and namespace (from flags, the
    environment, .env, or by asking Azure), write them to aksrun.toml, then run doctor.

    An existing file is never changed without --force; the difference is shown either way.
    """
    from ..doctor import DEFAULT_TIMEOUT, config_file, run_doctor
    from ..doctor.init import plan_init
    from ..errors import AksrunError, ConfigError

    try:
        plan = plan_init(flags, pyproject=pyproject, timeout=DEFAULT_TIMEOUT)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except AksrunError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    found, change = plan.found, plan.change
    target = change.target
    width = max(len(k) for k in found)
    values = max(len(f.value) for f in found.values())
    for key, item in found.items():
        click.echo(f"  {key:<{width}} = {item.value:<{values}}  ({item.source})", err=True)
    if change.unchanged:
        click.echo(f"{target.label} already says this; nothing to write.", err=True)
    elif change.old is not None and not force:
        click.echo(change.diff(), nl=False, err=as_json)
        click.echo(f"not written: {target.label} exists and would change as shown; run "
                   "`aksrun init --force` to write it.", err=True)
        sys.exit(EXIT_FAILED)
    else:
        config_file.write(change)
        click.echo(change.diff(), nl=False, err=as_json)  # stdout stays JSON with --json
        click.echo(f"{'updated' if change.old is not None else 'wrote'} {target.label}",
                   err=True)
    if no_doctor:
        return
    click.echo("", err=True)
    report = run_doctor(timeout=DEFAULT_TIMEOUT)
    _print_report(report, as_json)
    if not report.ok:
        sys.exit(EXIT_FAILED)
