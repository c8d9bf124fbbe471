"""`aksrun`: run functions and manage jobs from the shell.

Exit codes: 0 success, 1 the job failed, 2 usage error (bad arguments, unknown job id,
invalid configuration).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from ..errors import AksrunError, ConfigError, UnknownJobError

EXIT_FAILED, EXIT_USAGE = 1, 2


class _Group(click.Group):
    """Turns aksrun's own usage errors into exit code 2 with a one-line message."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, UnknownJobError) as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except AksrunError as exc:  # a store, API or job failure: not the user's typing
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_FAILED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aksrun")
def cli() -> None:
    """Run Python functions on Azure Kubernetes Service (or locally, same lifecycle).

    The backend comes from AKSRUN_BACKEND / .env / [tool.aksrun]; without Azure settings it
    is `local`.
    """


@cli.command()
@click.argument("target")
@click.argument("args", nargs=-1)
@click.option("--cpu", help='CPU request, e.g. "500m" or "2".')
@click.option("--memory", help='Memory, e.g. "4Gi".')
@click.option("--timeout", help='Per-call timeout, e.g. "30m".')
@click.option("--retries", type=int, help="Re-run a call that raised up to N times.")
@click.option("--detach", is_flag=True, help="Print the job id and return at once.")
@click.option("--dry-run", is_flag=True, help="Print the Kubernetes Job manifest; submit nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def run(target: str, args: tuple[str, ...], cpu, memory, timeout, retries, detach, dry_run,
        as_json) -> None:
    """Run MODULE:FUNC with ARGS (Python literals, or name=value keywords) and print its result.

    Example: aksrun run examples.quickstart:square 7
    """
    from ..api.decorator import RemoteFunction
    from ..core.options import FunctionOptions
    from .loading import load_target, parse_args

    func = load_target(target)
    positional, keywords = parse_args(args)
    remote = func if isinstance(func, RemoteFunction) else RemoteFunction(func, FunctionOptions())
    changes = {k: v for k, v in
               {"cpu": cpu, "memory": memory, "timeout": timeout, "retries": retries}.items()
               if v is not None}
    if changes:
        remote = remote.with_options(**changes)
    if dry_run:
        from .dry_run import print_manifest

        print_manifest(remote, positional, keywords)
        return
    try:
        fut = remote.submit(*positional, **keywords)
    except OSError as exc:
        error = _local_state_error(exc)
        if error is None:
            raise
        raise error from exc
    if detach:
        click.echo(fut.job_id)
        return
    click.echo(f"job {fut.job_id}", err=True)
    from ..api.decorator import LogStreamer

    streamer = LogStreamer(fut._run)
    try:
        _print_outcome(fut, as_json, before_print=streamer.stop)
    finally:
        streamer.stop()


def _timeline_file(ctx: click.Context, param: click.Parameter, value: str | None
                   ) -> str | None:
    """A file type aksrun draws, and matplotlib to draw it: said before any work."""
    if value is None:
        return None
    from ..timeline.draw import output_format, require_matplotlib

    try:
        output_format(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    require_matplotlib()
    return value


def _timeline_size(ctx: click.Context, param: click.Parameter, value: str | None
                   ) -> tuple[int, int] | None:
    if value is None:
        return None
    from ..timeline.draw import parse_size

    try:
        return parse_size(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.group()
def jobs() -> None:
    """List, inspect, follow, cancel and remove jobs."""


@jobs.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Show at most N jobs, newest first (N is 1 or more).")
def jobs_ls(as_json: bool, limit: int) -> None:
    """List jobs, newest first: id, function, state, calls done/total, started, duration."""
    from ..api.session import default_client
    from ..core.config import load_config

    config = load_config()
    try:
        statuses = default_client(config).list()[:limit]
    except OSError as exc:
        _check_local_state(config)
        raise AksrunError(f"could not list jobs: {exc}.") from exc
    if not statuses:
        _check_local_state(config)  # "no jobs yet" only when there is somewhere to look
    if as_json:
        click.echo(json.dumps([_status_dict(s) for s in statuses], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from ..core.quantities import format_duration

    table = Table(box=None, header_style="bold")
    for column in ("ID", "FUNCTION", "STATE", "CALLS", "STARTED", "DURATION"):
        table.add_column(column)
    for s in statuses:
        table.add_row(
            s.job_id, s.function, _styled(s.state), f"{s.calls_done}/{s.calls}",
            _when(s.started), format_duration(_duration(s)),
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)
    if not statuses:
        click.echo("no jobs yet: run `make demo` or call an @aksrun.function.", err=True)


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--timeline", "timeline", metavar="FILE", callback=_timeline_file,
              help="Also draw the job's tasks on a time axis into FILE (.png, .svg or .html; "
              "needs pip install 'aksrun[plot]').")
@click.option("--timeline-size", metavar="WxH", callback=_timeline_size,
              help="The timeline's size in pixels, e.g. 1200x600 (default: fits the tasks).")
def jobs_show(job_id: str, as_json: bool, timeline: str | None,
              timeline_size: tuple[int, int] | None) -> None:
    """Show one job: its state, calls, options, failures (and, with --timeline, a picture)."""
    from ..api.session import default_client

    if timeline_size and not timeline:
        raise click.UsageError("--timeline-size sizes the picture --timeline FILE draws; give "
                               "--timeline FILE too, or leave --timeline-size out.")
    client = default_client()
    if timeline:
        from ..timeline.collect import collect
        from ..timeline.draw import render

        drawn = collect(client, job_id)
        render(drawn, timeline, timeline_size)
        click.echo(f"drew the timeline of {job_id} ({len(drawn.rows)} tasks) into {timeline}",
                   err=True)
    record = client.record(job_id)
    data = _status_dict(client.status(job_id))
    data.update(kind=record.kind, chunks=len(record.chunks), options=record.options,
                python=record.python, backend=record.backend, user=record.user)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if value in (None, [], {}):
            continue
        if key in ("started", "finished"):
            value = _when(value)
        elif key == "duration":
            from ..core.quantities import format_duration

            value = format_duration(value)
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v!r}" for k, v in value.items()
                              if v not in (None, 0, (), [], {}))
        click.echo(f"{key:>12}: {value}")


@jobs.command("logs")
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing output while the job runs (every task, interleaved).")
@click.option("--task", type=int, default=None,
              help="Only this task (chunk) index, from 0; `jobs show` gives the count.")
def jobs_logs(job_id: str, follow: bool, task: int | None) -> None:
    """Print the function's stdout/stderr, per task, from the store. A map's lines start with
    their call's index (`[call 17] `); with -f every task is followed at once, interleaved."""
    from ..api.session import default_client

    client = default_client()
    record = client.record(job_id)
    count = len(record.chunks)
    if task is not None and not 0 <= task < count:
        valid = "0" if count == 1 else f"0 to {count - 1}"
        raise click.BadParameter(
            f"job {job_id} has {count} task{'s' * (count != 1)} ({valid}); there is no task "
            f"{task}. Give --task {valid}, or leave --task out for every task.",
            param_hint="'--task'",
        )
    if follow and task is None and count > 1:  # every task at once, line by line
        from ..core.live_logs import follow_job

        for _, text in follow_job(client.store, client.compute, job_id, count):
            sys.stdout.write(text)
            sys.stdout.flush()
        return
    tasks = [task] if task is not None else range(len(record.chunks))
    for index in tasks:
        if len(record.chunks) > 1 and task is None:
            click.echo(f"--- task {index} ---", err=True)
        for text in client.logs(job_id, index, follow=follow):
            sys.stdout.write(text)
            sys.stdout.flush()


@jobs.command("result")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def jobs_result(job_id: str, as_json: bool) -> None:
    """Wait for a job (re-attaching if needed) and print its result; exit 1 if it failed."""
    from ..api.attach import get

    _print_outcome(get(job_id), as_json)


@jobs.command("artifacts")
@click.argument("job_id")
@click.option("--call", "call", type=click.IntRange(min=0), default=None,
              help="Only this call's files (index from 0), straight into DEST.")
@click.option("--dest", type=click.Path(file_okay=False, writable=True), required=True,
              help="Directory to download into (a map's calls each get DEST/<call index>/).")
def jobs_artifacts(job_id: str, call: int | None, dest: str) -> None:
    """Download the files the job's calls wrote under aksrun.output_dir(), each verified
    against its recorded sha256; waits for the job if it still runs."""
    from ..api.attach import get

    written = get(job_id).artifacts(dest, call)
    for path in written:
        click.echo(str(path))
    if not written:
        which = f"call {call} of job {job_id}" if call is not None else f"job {job_id}"
        click.echo(f"{which} wrote no files under aksrun.output_dir().", err=True)


@jobs.command("cancel")
@click.argument("job_id")
def jobs_cancel(job_id: str) -> None:
    """Stop a running job (its runners are killed)."""
    from ..api.session import default_client

    client = default_client()
    if client.cancel(job_id):
        click.echo(f"cancelled {job_id}")
    else:
        click.echo(f"{job_id} had already {client.status(job_id).state}; nothing to cancel.")


@jobs.command("rm")
@click.argument("job_id")
def jobs_rm(job_id: str) -> None:
    """Remove a job and everything it left in the store (stopping it if it runs)."""
    from ..api.session import default_client

    count = default_client().remove(job_id)
    click.echo(f"removed {job_id} ({count} objects)")


def _check_local_state(config: Any) -> None:
    """Raise ConfigError when the local backend's state (AKSRUN_HOME) or a file:// store
    can't be read: an unusable directory lists as empty, which must not read "no jobs"."""
    from ..adapters.local_store import LocalStore, directory_problem

    if config.backend == "local":
        problem = directory_problem(config.home_path)
        if problem:
            raise ConfigError(
                f"aksrun's local state in {config.home_path} (home, from "
                f"{config.source_of('home')}) can't be read: {problem}; set AKSRUN_HOME to a "
                "readable, writable directory."
            )
    if config.store_url.startswith("file://"):
        LocalStore.from_url(config.store_url).check_readable()


def _local_state_error(exc: OSError) -> ConfigError | None:
    """A local backend that can't write its job folders under AKSRUN_HOME (the store, which
    says so itself, may live elsewhere): the path, the reason and the fix, not a traceback.
    None for any other OSError."""
    from ..core.config import load_config

    config = load_config()
    path = os.fsdecode(exc.filename) if exc.filename is not None else ""
    home = str(config.home_path)
    if config.backend != "local" or not (path == home or path.startswith(home + os.sep)):
        return None
    from ..adapters.local_store import directory_problem

    problem = directory_problem(config.home_path) or f"{exc.strerror or exc}: {path}"
    return ConfigError(
        f"aksrun's local state in {home} (home, from {config.source_of('home')}) is not "
        f"writable: {problem}; set AKSRUN_HOME to a writable directory."
    )


def _print_outcome(fut, as_json: bool, before_print=lambda: None) -> None:
    try:
        value = fut.result()
    except KeyboardInterrupt:
        fut.cancel()
        raise
    except BaseException as exc:
        import traceback

        from ..core.pickling import remote_frames

        before_print()
        remote = remote_frames(exc.__traceback__)
        if isinstance(exc, AksrunError) and remote is exc.__traceback__:
            click.echo(f"Error: {exc}", err=True)  # aksrun's own verdict: no frames to show
        else:
            traceback.print_exception(type(exc), exc, remote, file=sys.stderr)
        sys.exit(EXIT_FAILED)
    before_print()
    if as_json:
        click.echo(json.dumps(value, default=repr))
    else:
        click.echo(repr(value))


def _status_dict(s) -> dict[str, Any]:
    return {
        "job_id": s.job_id, "function": s.function, "state": s.state,
        "calls_done": s.calls_done, "calls": s.calls, "tasks": s.tasks,
        "failed_tasks": sorted(s.failed_indexes), "started": s.started,
        "finished": s.finished, "duration": _duration(s), "reason": s.reason,
        "message": s.message,
    }


def _duration(s) -> float | None:
    if s.started is None:
        return None
    return (s.finished or time.time()) - s.started


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _styled(state: str) -> str:
    color = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}
    return f"[{color.get(state, 'white')}]{state}[/]"


def main() -> None:
    cli(prog_name="aksrun")


def _register() -> None:
    from .admin import register as register_admin
    from .doctor import doctor, init
    from .gc import gc
    from .images import image

    cli.add_command(image)
    cli.add_command(gc)
    cli.add_command(doctor)
    cli.add_command(init)
    register_admin(cli)


_register()
