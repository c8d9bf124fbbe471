"""A job's timeline as a picture: one row per task, each attempt a bar on a time axis.

Drawn with matplotlib (the optional `plot` extra: `pip install 'aksrun[plot]'`), imported
only here and only when a picture is asked for, so `import aksrun` and every other command
stay light. No pyplot: a Figure of its own, so drawing never touches a notebook's figures or
needs a display.

An attempt is a thin bar while it waits (queued, scheduling, pulling its image) and a thick
one while its runner runs, coloured by how it ended. Up to LABELLED_ROWS tasks, each row
names its calls and says, on the right, how its attempts ended and what its calls did. Past
that the rows only get thinner (one per task whatever the count, thinner than a pixel past
~1,600 tasks at the default size) and the task axis is labelled every so many tasks: the
picture then shows where time went (waiting, retries, a straggler), and the HTML's table
keeps every attempt's words.
"""

from __future__ import annotations

import html
import io
import os
import re
import time
from pathlib import Path

from ..core.quantities import format_duration
from ..errors import ConfigError
from ..ports.compute import TaskSpan
from .collect import TaskRow, Timeline

FORMATS = (".png", ".svg", ".html")
LABELLED_ROWS = 40  # up to this many tasks, every row is labelled and summarised
DETAILED_ROWS = 500  # up to this many, every bar is an element with an id and a tooltip
DPI = 100
WIDTH = 1200  # default size in pixels: the width, and the height by the number of rows
ROW_PIXELS, FRAME_PIXELS, MIN_HEIGHT, MAX_HEIGHT = 26, 170, 360, 1800
SIZE_LIMITS = ((400, 10_000), (200, 10_000))  # what --timeline-size accepts, per side

COLORS = {
    "pending": "#c9ced6",
    "running": "#4c8bf5",
    "succeeded": "#2e9d5b",
    "retried": "#f29f38",
    "failed": "#d64541",
    "stopped": "#6f6f6f",
}
LEGEND = {
    "pending": "waiting (queued, scheduling, image pull)",
    "running": "running",
    "succeeded": "succeeded",
    "retried": "fault, task retried",
    "failed": "failed",
    "stopped": "stopped (job ended)",
}
PLOT_EXTRA = "install it with: pip install 'aksrun[plot]'"


def output_format(path: str | os.PathLike[str]) -> str:
    """The file type a path asks for: png, svg or html (ConfigError naming them otherwise)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"cannot draw a timeline into {os.fspath(path)!r}: "
            f"{'its type ' + suffix if suffix else 'it has no file type'} is not one aksrun "
            "draws; give a file ending in .png, .svg or .html.")
    return suffix[1:]


def parse_size(text: str) -> tuple[int, int]:
    """`1200x600` (pixels) -> (1200, 600); ConfigError saying what is accepted otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    (low_w, high_w), (low_h, high_h) = SIZE_LIMITS
    if match:
        width, height = int(match.group(1)), int(match.group(2))
        if low_w <= width <= high_w and low_h <= height <= high_h:
            return width, height
    raise ConfigError(
        f"timeline size {text!r} is not WIDTHxHEIGHT in pixels within {low_w}-{high_w} by "
        f"{low_h}-{high_h}; give e.g. 1200x600, or leave it out for a size that fits the "
        "job's tasks.")


def default_size(rows: int) -> tuple[int, int]:
    """WIDTH wide, and tall enough for a readable row per task up to MAX_HEIGHT."""
    return WIDTH, max(MIN_HEIGHT, min(MAX_HEIGHT, FRAME_PIXELS + ROW_PIXELS * rows))


def require_matplotlib() -> None:
    """Say what to install before any work is done, rather than fail half-way."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"drawing a job's timeline needs matplotlib, which is not installed; {PLOT_EXTRA}."
        ) from None


def render(timeline: Timeline, path: str | os.PathLike[str],
           size: tuple[int, int] | None = None) -> Path:
    """Draw `timeline` into `path` (its type from its suffix), exactly `size` pixels (PNG;
    the SVG's and the page's natural size) or default_size(); written whole or not at all."""
    kind = output_format(path)
    require_matplotlib()
    import matplotlib

    width, height = size or default_size(len(timeline.rows))
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        figure, tips = _figure(timeline, width, height)
        data = io.BytesIO()
        figure.savefig(data, format="png" if kind == "png" else "svg", dpi=DPI,
                       metadata={"Date": None} if kind != "png" else None)
    payload = data.getvalue()
    if kind != "png":
        svg = _with_tooltips(payload.decode("utf-8"), tips)
        payload = (svg if kind == "svg" else _page(timeline, svg)).encode("utf-8")
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(payload)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


# --- the figure -----------------------------------------------------------------------------

def _figure(timeline: Timeline, width: int, height: int):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    tips, used = _bars(axes, timeline)
    _frame(figure, axes, timeline, used)
    return figure, tips


def _bars(axes, timeline: Timeline) -> tuple[dict[str, str], set[str]]:
    """Every attempt's bars: one element each (with an id and a tooltip) up to DETAILED_ROWS
    tasks, one collection per colour past that (thousands of patches would crawl)."""
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Rectangle

    zero, end = timeline.submitted, timeline.end
    least = max(end - _earliest(timeline), 1e-3) * 0.003  # a bar stays visible however short
    detailed = len(timeline.rows) <= DETAILED_ROWS
    boxes: dict[str, list[list[tuple[float, float]]]] = {}
    tips: dict[str, str] = {}
    used: set[str] = set()
    for row in timeline.rows:
        for span in row.spans:
            for phase, color, start, stop in _segments(span, end):
                tall = 0.36 if phase == "pending" else 0.72
                x, y, w = start - zero, row.index - tall / 2, max(stop - start, least)
                raised = phase == "running" and bool(span.raised)  # done, some calls raised
                used.update([color, "raised"] if raised else [color])
                if detailed:
                    gid = f"task-{row.index}-attempt-{span.attempt}-{phase}"
                    axes.add_patch(Rectangle((x, y), w, tall, facecolor=COLORS[color],
                                             edgecolor="white", linewidth=0.4, gid=gid))
                    if raised:
                        axes.add_patch(Rectangle((x, y), w, tall, fill=False, hatch="///",
                                                 edgecolor=COLORS["failed"], linewidth=0))
                    tips[gid] = _tip(row, span, phase)
                    continue
                corners = [(x, y), (x + w, y), (x + w, y + tall), (x, y + tall)]
                boxes.setdefault(color, []).append(corners)
                if raised:
                    boxes.setdefault("raised", []).append(corners)
    for color, shapes in boxes.items():
        if color == "raised":
            axes.add_collection(PolyCollection(shapes, facecolors="none", hatch="///",
                                               edgecolors=COLORS["failed"], linewidths=0))
        else:
            axes.add_collection(PolyCollection(shapes, facecolors=COLORS[color],
                                               edgecolors="none"))
    return tips, used


def _frame(figure, axes, timeline: Timeline, used: set[str]) -> None:
    """Axes, row labels and notes, the job's start and end, title and legend."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    rows, zero, end = timeline.rows, timeline.submitted, timeline.end
    earliest = _earliest(timeline)
    axes.set_xlim(earliest - zero, (end - zero) + max(end - earliest, 1e-3) * 0.02)
    axes.set_ylim(len(rows) - 0.5, -0.5)  # task 0 on top
    axes.axvline(0, color="#888888", linestyle=":", linewidth=1)
    if timeline.finished:
        axes.axvline(timeline.finished - zero, color="#444444", linestyle="--", linewidth=1)
    axes.grid(axis="x", color="#e6e6e6", linewidth=0.6)
    axes.set_axisbelow(True)
    axes.set_xlabel("seconds since the job was submitted ("
                    + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(zero)) + ")")
    if len(rows) <= LABELLED_ROWS:
        axes.set_yticks(range(len(rows)), labels=[_row_label(row) for row in rows])
        axes.tick_params(axis="y", length=0)
        notes = axes.twinx()
        notes.set_ylim(axes.get_ylim())
        notes.set_yticks(range(len(rows)), labels=[_row_note(row, timeline) for row in rows])
        notes.tick_params(axis="y", length=0)
        for side in ("top", "right", "left"):
            notes.spines[side].set_visible(False)
    else:
        axes.yaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"task {int(v)}"))
        axes.set_ylabel(f"{len(rows):,} tasks, one row each")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.set_title(_title(timeline), loc="left", fontsize=10)
    handles = [Patch(facecolor=COLORS[key], label=LEGEND[key]) for key in COLORS if key in used]
    if "raised" in used:
        handles.append(Patch(facecolor=COLORS["succeeded"], hatch="///",
                             edgecolor=COLORS["failed"], label="succeeded, some calls raised"))
    if handles:
        figure.legend(handles=handles, loc="outside lower center", ncols=len(handles),
                      frameon=False, fontsize=8)


def _earliest(timeline: Timeline) -> float:
    """The picture's left edge: the submission, or an attempt stamped before it (another
    clock: the API server's, in whole seconds)."""
    return min([timeline.submitted, *(s.created for s in timeline.spans if s.created)])


def _segments(span: TaskSpan, end: float) -> list[tuple[str, str, float, float]]:
    """(phase, colour, start, stop) of an attempt: its wait, then its run."""
    created = span.created if span.created is not None else span.started
    finish = span.finished if span.finished is not None else end
    parts = []
    if span.started is None:
        if created is not None:
            parts.append(("pending", "stopped" if span.outcome == "stopped" else "pending",
                          created, finish))
        return parts
    if created is not None and span.started > created:
        parts.append(("pending", "pending", created, span.started))
    parts.append(("running", span.outcome, span.started, max(finish, span.started)))
    return parts


def _title(timeline: Timeline) -> str:
    state = timeline.state + (f" ({timeline.reason})" if timeline.reason else "")
    took = (timeline.finished or timeline.drawn_at) - timeline.submitted
    facts = [f"{len(timeline.rows):,} task{'s' * (len(timeline.rows) != 1)}",
             f"{timeline.calls:,} call{'s' * (timeline.calls != 1)}",
             f"{timeline.retries} task retr{'y' if timeline.retries == 1 else 'ies'}"]
    if timeline.calls_retried:
        facts.append(f"{timeline.calls_retried} call re-run{'s' * (timeline.calls_retried != 1)}")
    if timeline.raised:
        facts.append(f"{timeline.raised} call{'s' * (timeline.raised != 1)} raised")
    verb = "took" if timeline.finished else "running for"
    return (f"{timeline.function}  ·  {timeline.job_id}  ·  {timeline.backend}\n"
            f"{state}, {verb} {format_duration(took)}  ·  " + "  ·  ".join(facts))


def _calls(row: TaskRow) -> str:
    last = row.first_call + row.calls - 1
    return f"call {last}" if row.calls == 1 else f"calls {row.first_call}\u2013{last}"


def _row_label(row: TaskRow) -> str:
    return f"task {row.index} ({_calls(row)})"


def _row_note(row: TaskRow, timeline: Timeline) -> str:
    """How the task's attempts ended and what its calls did, in a few words."""
    if not row.spans:
        return "not started" if timeline.finished is None else "no record of it"
    last = row.spans[-1]
    retried = [s for s in row.spans if s.outcome == "retried"]
    words = []
    if last.outcome == "succeeded":
        ran = last.calls if last.calls is not None else row.calls
        words.append(f"{ran} call{'s' * (ran != 1)} done")
        if last.raised:
            words.append(f"{last.raised} raised")
        if last.retried:
            words.append(f"{last.retried} call re-run{'s' * (last.retried != 1)}")
    else:
        words.append(last.outcome + (f": {last.reason}" if last.reason else ""))
    if retried:
        reasons = sorted({s.reason or "fault" for s in retried})
        times = "once" if len(retried) == 1 else f"{len(retried)}x"
        words.append(f"retried {times} ({', '.join(reasons)})")
    return _short(" · ".join(words), 60)


def _tip(row: TaskRow, span: TaskSpan, phase: str) -> str:
    """A bar's tooltip in the SVG and the page: the attempt's times and its words."""
    head = f"task {row.index} ({_calls(row)}), attempt {span.attempt + 1}"
    why = _short(": ".join(x for x in (span.reason, span.message) if x), 400)
    if phase == "pending":
        lines = [f"{head}: waiting" if span.started is not None else f"{head}: {span.outcome}"]
        if span.created is not None and span.started is not None:
            lines.append(f"waited {format_duration(span.started - span.created)}")
        elif why:
            lines.append(why)
        return "\n".join(lines)
    lines = [f"{head}: {span.outcome}"]
    if span.created is not None and span.started is not None:
        lines.append(f"waited {format_duration(span.started - span.created)}")
    if span.started is not None and span.finished is not None:
        lines.append(f"ran {format_duration(span.finished - span.started)}")
    if span.outcome == "succeeded" and span.calls is not None:
        lines.append(f"{span.calls} calls, {span.raised or 0} raised, {span.retried or 0} re-run")
    if why:
        lines.append(why)
    return "\n".join(lines)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


# --- SVG and HTML ---------------------------------------------------------------------------

def _with_tooltips(svg: str, tips: dict[str, str]) -> str:
    """A <title> in each bar's group: browsers show it on hover."""
    def add(match: re.Match[str]) -> str:
        tip = tips.get(match.group(2))
        return match.group(1) + (f"<title>{html.escape(tip)}</title>" if tip else "")

    return re.sub(r'(<g id="([^"]+)">)', add, svg)


def _page(timeline: Timeline, svg: str) -> str:
    """A minimal page: the SVG inline (tooltips work), and every attempt in a table."""
    inline = svg[svg.index("<svg"):]
    cells = []
    for row in timeline.rows:
        for span in row.spans:
            waited = (span.started - span.created if span.started is not None
                      and span.created is not None else None)
            ran = (span.finished - span.started if span.finished is not None
                   and span.started is not None else None)
            counts = (f"{span.calls} / {span.raised or 0} / {span.retried or 0}"
                      if span.calls is not None else "")
            why = ": ".join(x for x in (span.reason, span.message) if x)
            cells.append(
                f"<tr><td>{row.index}</td><td>{html.escape(_calls(row))}</td>"
                f"<td>{span.attempt + 1}</td><td class=\"{span.outcome}\">{span.outcome}</td>"
                f"<td>{format_duration(waited) if waited is not None else ''}</td>"
                f"<td>{format_duration(ran) if ran is not None else ''}</td>"
                f"<td>{counts}</td><td>{html.escape(_short(why, 400))}</td></tr>")
    title = html.escape(f"{timeline.function} · {timeline.job_id}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>timeline of {title}</title>\n<style>body{{font-family:sans-serif;"
        "margin:1.5em}svg{max-width:100%;height:auto}table{border-collapse:collapse;"
        "font-size:90%}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}"
        + "".join(f".{k}{{color:{c}}}" for k, c in COLORS.items())
        + f"</style></head>\n<body>\n<h1>{title}</h1>\n"
        "<p>One row per task; hover a bar for its attempt.</p>\n"
        f"{inline}\n<details><summary>every attempt ({len(cells)})</summary>\n<table>"
        "<tr><th>task</th><th>calls</th><th>attempt</th><th>outcome</th><th>waited</th>"
        "<th>ran</th><th>calls / raised / re-run</th><th>why</th></tr>\n"
        + "\n".join(cells) + "\n</table></details>\n</body></html>\n")
