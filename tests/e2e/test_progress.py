"""A long map shows a progress bar on a terminal, and nothing when stderr is not one."""

from __future__ import annotations

import aksrun

from . import funcs


def test_progress_bar_counts_calls_when_enabled(capsys):
    results = list(aksrun.function()(funcs.square).map(range(30), chunksize=10, progress=True))
    assert results == [x * x for x in range(30)]
    err = capsys.readouterr().err
    assert "30/30" in err and "square" in err


def test_no_progress_bar_when_stderr_is_not_a_terminal(capsys):
    list(aksrun.function()(funcs.square).map(range(30), chunksize=10))
    assert "30/30" not in capsys.readouterr().err
