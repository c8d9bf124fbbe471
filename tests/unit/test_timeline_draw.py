"""Drawing a timeline: every task keeps a row however many there are (rows get thinner), and
a picture is written whole or not at all."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from aksrun.errors import ConfigError
from aksrun.ports.compute import TaskSpan
from aksrun.timeline import draw
from aksrun.timeline.collect import TaskRow, Timeline

T0 = 1_800_000_000.0


def timeline(tasks: int, state: str = "succeeded") -> Timeline:
    rows = []
    for i in range(tasks):
        created = T0 + (i // 50) * 1.0
        spans = []
        if i % 7 == 3:  # a fault, then the retry
            spans.append(TaskSpan(i, 0, created, created + 0.5, created + 1.0, "retried",
                                  reason="Evicted", message="pod was evicted"))
            created += 1.0
        spans.append(TaskSpan(i, len(spans), created, created + 0.3, created + 2.0, "succeeded",
                              calls=4, raised=int(i % 11 == 0), retried=0))
        rows.append(TaskRow(i, 4 * i, 4, tuple(spans)))
    end = max(s.finished for r in rows for s in r.spans)
    return Timeline("many-20261201-000000-abcde", "many", "local", T0, state, None, None, end,
                    end + 1, tuple(rows))


def test_thousands_of_tasks_draw_at_the_default_size_one_row_each(tmp_path):
    """3,000 tasks at the default 1200x1800: each row is thinner than a pixel, and the task
    axis spans exactly the 3,000 rows."""
    picture = draw.render(timeline(3000), tmp_path / "many.png")
    with Image.open(picture) as image:
        assert image.size == draw.default_size(3000) == (1200, draw.MAX_HEIGHT)
        image.verify()
    svg = draw.render(timeline(3000), tmp_path / "many.svg")
    texts = [t.text or "" for t in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}text")]
    assert "3,000 tasks, one row each" in texts
    assert "task 0" in texts and "task 3000" not in texts


def test_a_few_tasks_are_each_labelled_and_summarised(tmp_path):
    svg = draw.render(timeline(8), tmp_path / "few.svg")
    texts = [t.text or "" for t in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}text")]
    assert [t for t in texts if t.startswith("task ")] == [
        f"task {i} (calls {4 * i}\u2013{4 * i + 3})" for i in range(8)]
    assert "4 calls done \u00b7 retried once (Evicted)" in texts  # task 3
    assert "4 calls done \u00b7 1 raised" in texts  # task 0


def test_a_picture_that_cannot_be_written_leaves_nothing_behind(tmp_path, monkeypatch):
    target = tmp_path / "job.png"
    target.write_bytes(b"the picture drawn before")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(draw.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        draw.render(timeline(2), target)
    assert target.read_bytes() == b"the picture drawn before"
    assert [p.name for p in tmp_path.iterdir()] == ["job.png"]


@pytest.mark.parametrize("text", ["1200", "0x0", "399x600", "1200x10001", "12oox600", ""])
def test_sizes_outside_what_draws_are_refused(text):
    with pytest.raises(ConfigError, match="WIDTHxHEIGHT"):
        draw.parse_size(text)


def test_sizes_within_limits_are_read():
    assert draw.parse_size("1200x600") == (1200, 600)
    assert draw.parse_size(" 400X200 ") == (400, 200)
