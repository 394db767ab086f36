"""The live view: one line per ended trial and a periodic summary off a terminal, a live display on one, and the
retrain's progress for ``hypernas test``."""

from __future__ import annotations

import io
import re

from search.progress import ProgressView, RetrainProgress
from search.records import ExperimentRecords
from trainers import MemoryReporter

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _start(records: ExperimentRecords, view: ProgressView, number: int, epochs: int = 3,
           at: float | None = 1000.0) -> None:
    records.started(number, f"t{number}", seed=number, params={"lr": 0.1}, epochs=epochs, at=at)
    view.update(records)


def _result(records: ExperimentRecords, view: ProgressView, number: int, epoch: int, value: float) -> None:
    records.result(number, epoch, {"val_accuracy": value}, node="node-a", at=1000.0 + epoch)
    view.update(records)


def _end(records: ExperimentRecords, view: ProgressView, number: int, state: str | None = None,
         error: str | None = None) -> None:
    record = records.ended(number, state, error, at=1010.0)
    view.trial_ended(record)
    view.update(records)


def test_off_a_terminal_one_line_per_ended_trial_and_a_periodic_summary():
    clock, out = FakeClock(), io.StringIO()
    records = ExperimentRecords("val_accuracy", "max")
    view = ProgressView(4, "val_accuracy", out, interval_s=30.0, clock=clock)

    for number in (0, 1):
        _start(records, view, number)
    for epoch, value in ((1, 0.5), (2, 0.7), (3, 0.6)):
        _result(records, view, 0, epoch, value)
    _result(records, view, 1, 1, 0.4)
    assert out.getvalue() == ""  # starts and results print nothing

    clock.now += 10
    _end(records, view, 0)
    _end(records, view, 1)  # one epoch of three: pruned
    _start(records, view, 2)
    assert out.getvalue().splitlines() == [
        "trial 0 COMPLETE val_accuracy=0.6000 (best 0.7000 @ epoch 2) epochs 3/3 10.0 s",
        "trial 1 PRUNED val_accuracy=0.4000 (best 0.4000 @ epoch 1) epochs 1/3 10.0 s",
    ]

    clock.now += 25  # 35 s since the start: the summary is due at the next event
    view.update(records)
    summary = out.getvalue().splitlines()[-1]
    assert summary == ("trials 2/4  running 1  complete 1  pruned 1  failed 0  best val_accuracy 0.6000 (trial 0)"
                       "  elapsed 00:35  eta 00:35")
    clock.now += 29  # not yet another interval
    view.update(records)
    assert len(out.getvalue().splitlines()) == 3

    _end(records, view, 2, "FAILED", error="Traceback ...\nRuntimeError: CUDA out of memory")
    assert out.getvalue().splitlines()[-1] == \
        "trial 2 FAILED val_accuracy=- epochs 0/3 10.0 s  error: RuntimeError: CUDA out of memory"

    view.close(records)
    view.close(records)  # once
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and lines[-1].startswith("trials 3/4  running 0  complete 1  pruned 1  failed 1")


def test_eta_is_unknown_before_a_trial_ends_and_ignores_trials_ended_before_a_resume():
    clock = FakeClock()
    records = ExperimentRecords("val_accuracy", "max")
    records.started(0, "t0", seed=0, params={}, epochs=1, at=0.0)
    records.result(0, 1, {"val_accuracy": 0.9}, node=None, at=1.0)
    records.ended(0, at=2.0)  # ended before this driver started (a resume)
    view = ProgressView(3, "val_accuracy", io.StringIO(), clock=clock)
    records.started(1, "t1", seed=1, params={}, epochs=1, at=3.0)
    assert view.line(records).endswith("eta -")
    clock.now += 60
    records.result(1, 1, {"val_accuracy": 0.8}, node=None, at=4.0)
    records.ended(1, at=5.0)
    assert view.line(records).endswith("elapsed 01:00  eta 01:00")  # one trial in 60 s, one left


def test_on_a_terminal_a_live_display_of_counts_and_running_trials():
    clock, out = FakeClock(), Terminal()
    records = ExperimentRecords("val_accuracy", "max")
    view = ProgressView(30, "val_accuracy", out, clock=clock, max_rows=2, width=160)
    for number in range(4):
        _start(records, view, number, epochs=5, at=None)  # now: the rows' elapsed seconds are wall time
        clock.now += 1  # past the redraw interval: every event redraws
    _result(records, view, 1, 2, 0.875)
    clock.now += 1
    _end(records, view, 3, "FAILED", error="boom")
    clock.now += 1
    view.update(records)
    text = ANSI.sub("", out.getvalue())

    assert "trial 3 FAILED val_accuracy=- epochs 0/5" in text  # printed above the display
    last = text[text.rindex("trials 1/30"):]  # the latest frame
    assert "running 3" in last and "failed 1" in last and "elapsed 00:06" in last and "eta 02:54" in last
    rows = [line.split() for line in last.splitlines()[1:] if line.strip()]
    assert rows[0][:2] == ["trial", "epoch"]
    del rows[1][4], rows[2][4]  # elapsed seconds: wall time
    assert rows[1] == ["0", "0/5", "-", "-", "-"]
    assert rows[2] == ["1", "2/5", "0.8750", "0.8750", "node-a"]
    assert " ".join(rows[3]) == "… and 1 more"

    view.close(records)
    assert out.getvalue().count("\x1b[?25l") == out.getvalue().count("\x1b[?25h")  # the cursor is given back


def test_a_terminal_redraws_at_most_a_few_times_a_second():
    clock, out = FakeClock(), Terminal()
    records = ExperimentRecords("val_accuracy", "max")
    view = ProgressView(2, "val_accuracy", out, clock=clock)
    _start(records, view, 0)
    drawn = out.getvalue()
    _result(records, view, 0, 1, 0.5)  # the same instant: not redrawn
    assert out.getvalue() == drawn
    view.update(records, force=True)
    assert out.getvalue() != drawn


def test_the_retrain_reports_each_epoch_on_its_stream_and_keeps_the_memory_reporter():
    clock, out = FakeClock(), io.StringIO()
    inner = MemoryReporter(resume_from=None)
    reporter = RetrainProgress(inner, trial=7, epochs=2, metric="val_accuracy", stream=out, clock=clock)
    reporter.begin("cpu")
    clock.now += 2.5
    reporter.report(1, {"val_accuracy": 0.91, "val_loss": 0.3})
    clock.now += 2.5
    reporter.report(2, {"val_loss": 0.2})
    assert out.getvalue().splitlines() == [
        "retraining trial 7: 2 epochs on cpu",
        "retraining trial 7: epoch 1/2 val_accuracy 0.9100 (2.5 s)",
        "retraining trial 7: epoch 2/2 (5.0 s)",
    ]
    assert inner.history == [{"epoch": 1, "val_accuracy": 0.91, "val_loss": 0.3}, {"epoch": 2, "val_loss": 0.2}]
    assert reporter.restore() is None
