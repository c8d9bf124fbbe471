"""Doctor's report as text (one line per check: ✓ or ✗, and the fix) or as JSON."""

from __future__ import annotations

import json

from .model import Report, Result, Status

_COLOURS = {Status.OK: "green", Status.FAIL: "red", Status.SKIP: "yellow"}


def line(result: Result, colour: bool = False) -> str:
    """`✓ title: summary` or `✗ title: summary — fix: ...`, on one line."""
    import click

    mark = result.status.mark
    if colour:
        mark = click.style(mark, fg=_COLOURS[result.status], bold=True)
    text = f"{mark} {result.title}: {result.outcome.summary}"
    if result.outcome.fix:
        text += f" — fix: {result.outcome.fix}"
    return text


def text(report: Report, colour: bool = False) -> str:
    lines = [f"aksrun doctor: {report.note}"] if report.note else []
    lines += [line(result, colour) for result in report.results]
    failed = sum(1 for r in report.results if r.status is Status.FAIL)
    skipped = sum(1 for r in report.results if r.status is Status.SKIP)
    verdict = ("all checks passed" if report.ok else
               f"{failed} check{'s' if failed != 1 else ''} failed")
    if skipped:
        verdict += f", {skipped} skipped"
    lines.append(f"{verdict} ({report.seconds:.1f} s)")
    return "\n".join(lines)


def as_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, default=str)
