"""Progress bars: drawn on a terminal, silent otherwise or with --quiet."""

from __future__ import annotations

import io

from bayesmix.progress import ProgressBar, wanted


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_wanted_only_on_a_terminal_and_not_quiet():
    assert wanted(stream=FakeTerminal())
    assert not wanted(quiet=True, stream=FakeTerminal())
    assert not wanted(stream=io.StringIO())


def test_disabled_bar_writes_nothing_but_counts(capsys):
    with ProgressBar(3, "fits", enabled=False) as bar:
        for i in range(3):
            bar.advance(f"fit {i}")
    assert bar.steps == 3
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_enabled_bar_draws_description_count_and_status_on_stderr(capsys):
    with ProgressBar(None, "campaign steps", enabled=True) as bar:
        bar.set_total(2)
        bar.advance("step 0")
        bar.advance("step 1: done")
    err = capsys.readouterr().err
    assert "campaign steps" in err and "2/2" in err and "step 1: done" in err
