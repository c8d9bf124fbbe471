"""`aksrun admin bootstrap|add-user|remove-user|teardown`: set a cluster up for aksrun and
give people their own corner of it, idempotently.

Each command prints one line per resource as it goes (found / created / changed / removed,
or "would ..." with --dry-run); `--json` prints the same steps as a JSON list at the end.
Long waits (a cluster update, an image build, Entra propagation) show progress on stderr.
Exit codes: 0 done (or nothing to do), 1 Azure or the cluster refused or a check failed,
2 bad input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from ..core.config import load_config

_SYMBOLS = {
    "found": ("✓", "green"), "created": ("+", "bold green"), "changed": ("~", "bold yellow"),
    "removed": ("-", "bold red"), "would create": ("·", "cyan"), "would change": ("·", "cyan"),
    "would remove": ("·", "cyan"), "absent": (" ", "dim"), "missing": ("✗", "bold red"),
    "ready": ("✓", "bold green"), "skipped": ("=", "dim"),
}


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--subscription", help="Subscription id (default: AZURE_SUBSCRIPTION_ID)."),
        click.option("-g", "--resource-group",
                     help="Resource group of the cluster (default: AZURE_RESOURCE_GROUP)."),
        click.option("--cluster", help="AKS cluster name (default: AZURE_AKS_CLUSTER_NAME)."),
        click.option("--kubeconfig", envvar="AKSRUN_ADMIN_KUBECONFIG",
                     type=click.Path(dir_okay=False),
                     help="Reach the cluster with this kubeconfig instead of the admin "
                          "credentials from ARM (env AKSRUN_ADMIN_KUBECONFIG)."),
        click.option("--json", "as_json", is_flag=True, help="Print the steps as a JSON list."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class _Printer:
    """One line per step on stdout (rich), progress on stderr; or quiet for --json."""

    def __init__(self, as_json: bool) -> None:
        from rich.console import Console

        self.as_json = as_json
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self._status: Any = None

    def step(self, step: Any) -> None:
        if self.as_json:
            return
        symbol, style = _SYMBOLS.get(step.state, ("?", ""))
        from rich.markup import escape

        detail = f"  [dim]{escape(step.detail)}[/]" if step.detail else ""
        self._pause()
        self.out.print(f"[{style}]{symbol} {step.state:<12}[/] {escape(step.kind):<22} "
                       f"{escape(step.name)}{detail}")

    def progress(self, text: str) -> None:
        if self.err.is_terminal:
            if self._status is None:
                self._status = self.err.status(text)
                self._status.start()
            else:
                self._status.update(text)
        else:
            self.err.print(text)

    def _pause(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def done(self, steps: list[Any]) -> None:
        self._pause()
        if self.as_json:
            click.echo(json.dumps([s.as_dict() for s in steps], indent=2))

    def note(self, text: str) -> None:
        self._pause()
        self.err.print(text)


@contextmanager
def _context(subscription: str | None, resource_group: str | None, cluster: str | None,
             kubeconfig: str | None, as_json: bool, dry_run: bool = False,
             **settings: Any) -> Iterator[tuple[Any, _Printer]]:
    from ..admin.context import AdminContext

    # The admin acts on others' names, never their own: a shared login name (root on a jump
    # box) is no reason to refuse, so the setting that names "your" namespace is fixed here.
    config = load_config({"subscription_id": subscription, "resource_group": resource_group,
                          "cluster_name": cluster, "backend": "kubernetes", "user": "admin",
                          **settings})
    printer = _Printer(as_json)
    ctx = AdminContext(config, dry_run=dry_run, on_step=printer.step,
                       on_progress=printer.progress, kubeconfig=kubeconfig)
    try:
        yield ctx, printer
    finally:
        printer.done(ctx.log.steps)


@click.group("admin")
def admin() -> None:
    """Set up a cluster for aksrun and add or remove its users (for cluster admins).

    Needs Owner on the resource group (or Contributor plus Role Based Access Control
    Administrator) and Microsoft Graph read access to look people up.
    """


@admin.command("bootstrap")
@_common
@click.option("--storage-account", help="Storage account to use or create (default: the one "
              "aksrun created here, or a new one named after the cluster).")
@click.option("--registry", help="Container registry to use or create (default: "
              "AZURE_CONTAINER_REGISTRY, the one aksrun created here, or a new one).")
@click.option("--enable-workload-identity", is_flag=True,
              help="Turn on the cluster's OIDC issuer and workload identity if they are off.")
@click.option("--no-image", is_flag=True, help="Don't look up or build the runner image.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
def bootstrap_cmd(subscription, resource_group, cluster, kubeconfig, as_json, storage_account,
                  registry, enable_workload_identity, no_image, dry_run) -> None:
    """Find or create what every user shares: workload identity on the cluster, a storage
    account, a registry, the kubelet's AcrPull, the runner image."""
    from ..admin.bootstrap import bootstrap
    from ..admin.errors import AdminError

    with _context(subscription, resource_group, cluster, kubeconfig, as_json, dry_run) as (
            ctx, printer):
        result = bootstrap(ctx, storage_account=storage_account, registry=registry,
                           enable_workload_identity=enable_workload_identity,
                           runner_image=not no_image)
    if result.missing:
        raise AdminError("bootstrap is incomplete: " + "; ".join(
            f"{s.kind} {s.name}: {s.detail}" for s in result.missing))
    if not as_json:
        verb = "would be ready after these changes" if dry_run else "is ready for aksrun"
        printer.note(f"cluster {ctx.target.cluster_name} {verb}; next: `aksrun admin add-user "
                     f"NAME --principal OBJECT_ID_OR_UPN`.")


@admin.command("add-user")
@click.argument("name")
@_common
@click.option("--principal", required=True,
              help="The person: Entra ID object id, or user principal name (alice@contoso.com).")
@click.option("--storage-account", help="Storage account (default: the one bootstrap set up).")
@click.option("--registry", help="Container registry the person may pull from (default: the "
              "one bootstrap set up).")
@click.option("--wait", "wait", default="15m", show_default=True,
              help="How long to wait for Entra ID and Azure RBAC to take the new identity in.")
@click.option("--no-wait", is_flag=True, help="Don't wait until the identity reaches its "
              "container.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
def add_user_cmd(name, subscription, resource_group, cluster, kubeconfig, as_json, principal,
                 storage_account, registry, wait, no_wait, dry_run) -> None:
    """Give NAME (a person) a namespace aksrun-NAME, an identity, a container, and the roles
    to run aksrun jobs there and nowhere else."""
    from ..admin.users import add_user
    from ..core.quantities import parse_duration

    bound = None if no_wait else parse_duration(wait, "--wait")
    with _context(subscription, resource_group, cluster, kubeconfig, as_json, dry_run) as (
            ctx, printer):
        result = add_user(ctx, name, principal, storage_account=storage_account,
                          registry=registry, wait=bound)
    if as_json:
        return
    if dry_run:
        printer.note(f"dry run: nothing was changed for {name}.")
    elif not result.changed:
        printer.note(f"{name} was already set up: nothing changed (as {name}: "
                     f"`{result.init_command}`).")
    else:
        printer.note(f"{name} is set up: as {name}, run `{result.init_command}`, then a "
                     "first call.")


@admin.command("remove-user")
@click.argument("name")
@_common
@click.option("--storage-account", help="Storage account (default: the one bootstrap set up).")
@click.option("--registry", help="Container registry (default: the one bootstrap set up).")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
def remove_user_cmd(name, subscription, resource_group, cluster, kubeconfig, as_json,
                    storage_account, registry, dry_run) -> None:
    """Remove everything aksrun made for NAME: namespace (with its jobs), identity, container
    (with its blobs) and role assignments. Nothing aksrun did not create is touched."""
    from ..admin.users import remove_user

    with _context(subscription, resource_group, cluster, kubeconfig, as_json, dry_run) as (
            ctx, printer):
        result = remove_user(ctx, name, storage_account=storage_account, registry=registry)
    if as_json:
        return
    if not result.exists:
        printer.note(f"no aksrun user {name!r} on cluster {ctx.target.cluster_name}: nothing "
                     "to remove.")
    elif dry_run:
        printer.note(f"dry run: nothing of {name}'s was removed.")
    else:
        printer.note(f"removed aksrun user {name}.")


@admin.command("teardown")
@_common
@click.option("--storage-account", help="Storage account (default: the one bootstrap set up).")
@click.option("--registry", help="Container registry (default: the one bootstrap set up).")
@click.option("--yes", is_flag=True, help="Don't ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
def teardown_cmd(subscription, resource_group, cluster, kubeconfig, as_json, storage_account,
                 registry, yes, dry_run) -> None:
    """Remove every aksrun user and everything bootstrap created (a storage account or
    registry that existed before stays, and the cluster's workload identity stays on)."""
    from ..admin.teardown import teardown
    from ..errors import ConfigError

    if not (yes or dry_run):
        with _context(subscription, resource_group, cluster, kubeconfig, as_json,
                      dry_run=True) as (ctx, printer):
            teardown(ctx, storage_account=storage_account, registry=registry)
        if not sys.stdin.isatty():
            raise ConfigError("teardown removes the steps above for good: pass --yes to "
                              "confirm (or --dry-run to only look).")
        click.confirm("Remove all of the above?", abort=True)
    with _context(subscription, resource_group, cluster, kubeconfig, as_json, dry_run) as (
            ctx, printer):
        result = teardown(ctx, storage_account=storage_account, registry=registry)
    if not as_json:
        users = ", ".join(result.users) or "none"
        verb = "would remove" if dry_run else "removed"
        printer.note(f"teardown: {verb} aksrun users: {users}.")


def register(cli: click.Group) -> None:
    """Add `aksrun admin` to the main command group."""
    cli.add_command(admin)
