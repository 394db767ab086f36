"""The experiment journal: one file, one writer; the records and the decision log are views rebuilt from it."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from search._optuna import AskTellStudy
from search._tune._searcher import OptunaSearcher
from search.config import ConfigError, load_config
from search.events import EventLog
from search.journal import JOURNAL_FILE, VERSION, Journal, JournalVersionError, read_entries
from search.records import ExperimentRecords, final_state
from tests.helpers import tiny_config


def _views(journal: Journal) -> tuple[ExperimentRecords, EventLog]:
    return ExperimentRecords("val_loss", "min", journal=journal), EventLog(journal)


def _experiment(records: ExperimentRecords, events: EventLog) -> None:
    """A small history: three trials, one failed attempt, decisions, a NaN end."""
    for number, values in ((0, [0.5, 0.4, 0.3]), (1, [0.6, 0.7]), (2, [0.2, math.nan, math.nan])):
        events.ask(number, {"lr": 0.1 * (number + 1), "api_token": "s3cret"})
        records.started(number, f"t{number}", 100 + number, {"lr": 0.1 * (number + 1)}, 3, at=1000.0 + number)
        for epoch, value in enumerate(values, start=1):
            records.result(number, epoch, {"val_loss": value, "epoch_wall_s": 0.1}, "node-a", "cpu",
                           at=1000.0 + number + epoch)
            events.decision(number, epoch, value, "CONTINUE", rung=1 if epoch == 1 else None, cutoff=0.5)
    records.attempt_failed(1, 1, "STALLED", "killed after 30 s of silence")
    records.attempt_reclassified(1, 1, "PREEMPTED")
    events.stall(1, 30.0)
    records.ended(0)
    records.ended(1)
    records.ended(2)
    events.tell(0, "COMPLETE", 0.3)


def _same(a: ExperimentRecords, b: ExperimentRecords) -> None:
    def text(records):  # NaN != NaN: compared as written
        return json.dumps([records.trial_rows(), sorted(records.curves.items())], sort_keys=True)

    assert text(a) == text(b)


def test_one_journal_holds_everything_and_both_views_come_back_from_it(tmp_path):
    journal = Journal(tmp_path / JOURNAL_FILE)
    records, events = _views(journal)
    _experiment(records, events)
    journal.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [JOURNAL_FILE]  # one file: no second journal
    lines = [json.loads(line) for line in (tmp_path / JOURNAL_FILE).read_text().splitlines()]
    assert [e["seq"] for e in lines] == list(range(len(lines))) and all(e["v"] == VERSION for e in lines)
    assert {e["kind"] for e in lines} == {"ask", "started", "result", "decision", "attempt_failed",
                                          "attempt_reclassified", "stall_kill", "ended", "tell"}

    again = ExperimentRecords.read(tmp_path, "val_loss", "min")
    _same(again, records)
    assert again.trials[2].state == "FAILED" and again.trials[0].state == "COMPLETE"
    assert again.trials[1].state == "PRUNED" and again.trials[1].failed_attempts[0]["state"] == "PREEMPTED"
    log = EventLog.read(tmp_path)
    assert json.dumps(log.rows) == json.dumps(events.rows)
    assert [r["kind"] for r in log.rows if r["kind"] == "attempt"] == ["attempt", "attempt"]  # written once, shown
    ask = next(r for r in log.rows if r["kind"] == "ask")
    assert json.loads(ask["detail"])["api_token"] == "***" and "params" not in ask  # the view masks secrets
    assert log.table().num_rows == len(log.rows)


def test_a_resumed_journal_appends_where_it_stopped(tmp_path):
    journal = Journal(tmp_path / JOURNAL_FILE)
    records, events = _views(journal)
    _experiment(records, events)
    journal.close()
    journal, entries = Journal.open(tmp_path)
    records, events = _views(journal)
    records.replay(entries)
    events.replay(entries)
    records.started(3, "t3", 103, {"lr": 0.4}, 3)
    events.ask(4, {"lr": 0.5})
    journal.close()
    seqs = [e["seq"] for e in read_entries(tmp_path)]
    assert seqs == list(range(len(seqs)))
    assert sorted(ExperimentRecords.read(tmp_path, "val_loss", "min").trials) == [0, 1, 2, 3]
    assert EventLog.read(tmp_path).asked() == {0, 1, 2, 4}


def test_a_torn_last_line_is_dropped_and_appending_goes_on_after_it(tmp_path):
    """``kill -9`` mid-write leaves half a line: reading drops it, and the resumed writer cuts it off first (else
    its first entry would be glued to the fragment and lost too)."""
    journal = Journal(tmp_path / JOURNAL_FILE)
    records, events = _views(journal)
    records.started(0, "t0", 1, {"lr": 0.1}, 3)
    records.result(0, 1, {"val_loss": 0.5}, None)
    journal.close()
    with open(tmp_path / JOURNAL_FILE, "a") as file:
        file.write('{"v": 1, "seq": 2, "time": 1.0, "kind": "result", "number": 0, "ep')
    assert ExperimentRecords.read(tmp_path, "val_loss", "min").trials[0].epochs_run == 1
    journal, entries = Journal.open(tmp_path)
    records = ExperimentRecords("val_loss", "min", journal=journal)
    records.replay(entries)
    records.result(0, 2, {"val_loss": 0.4}, None)
    records.ended(0)
    journal.close()
    again = ExperimentRecords.read(tmp_path, "val_loss", "min")
    assert again.trials[0].epochs_run == 2 and again.trials[0].state == "PRUNED"
    assert [e["seq"] for e in read_entries(tmp_path)] == [0, 1, 2, 3]


def test_trial_ends_are_fsynced_per_line_results_are_only_flushed(tmp_path, monkeypatch):
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    journal = Journal(tmp_path / JOURNAL_FILE)
    records, _ = _views(journal)
    records.started(0, "t0", 1, {}, 2)
    records.result(0, 1, {"val_loss": 0.5}, None)
    records.result(0, 2, {"val_loss": 0.4}, None)
    assert synced == [] and len((tmp_path / JOURNAL_FILE).read_text().splitlines()) == 3  # flushed, not synced
    records.ended(0)
    assert len(synced) == 1
    journal.close()
    assert len(synced) == 2


def _write_v0_folder(folder: Path) -> None:
    """An experiment folder as hypernas wrote it before the journal (version 0): two files, two formats."""
    records = [
        {"op": "started", "number": 0, "trial_id": "a", "seed": 7, "params": {"lr": 0.1}, "epochs": 3, "attempt": 1,
         "at": 10.0},
        {"op": "result", "number": 0, "epoch": 1, "metrics": {"val_loss": 0.5}, "node": "n", "device": "cpu",
         "at": 11.0},
        {"op": "attempt_failed", "number": 0, "attempt": 1, "state": "STALLED", "error": "silent"},
        {"op": "started", "number": 0, "trial_id": "a", "seed": 7, "params": {"lr": 0.1}, "epochs": 3, "attempt": 2,
         "at": 12.0},
        {"op": "result", "number": 0, "epoch": 3, "metrics": {"val_loss": 0.25}, "node": "n", "device": "cpu",
         "at": 13.0},
        {"op": "ended", "number": 0, "state": "COMPLETE", "error": None, "at": 14.0},
        {"op": "started", "number": 1, "trial_id": "b", "seed": 8, "params": {"lr": 0.2}, "epochs": 3, "attempt": 1,
         "at": 10.5},
        {"op": "result", "number": 1, "epoch": 1, "metrics": {"val_loss": 0.9}, "node": "n", "device": "cpu",
         "at": 11.5},
        {"op": "ended", "number": 1, "state": "PRUNED", "error": None, "at": 12.5},
    ]
    events = [
        {"seq": 0, "time": 9.0, "kind": "ask", "trial": 0, "detail": json.dumps({"lr": 0.1})},
        {"seq": 1, "time": 9.5, "kind": "ask", "trial": 1, "detail": json.dumps({"lr": 0.2})},
        {"seq": 2, "time": 11.5, "kind": "decision", "trial": 1, "epoch": 1, "value": 0.9, "decision": "STOP",
         "rung": 1, "cutoff": 0.5, "detail": None},
        {"seq": 3, "time": 11.6, "kind": "attempt", "trial": 0, "epoch": 1, "state": "STALLED",
         "detail": json.dumps({"attempt": 1})},
        {"seq": 4, "time": 14.0, "kind": "tell", "trial": 0, "state": "COMPLETE", "value": 0.25},
    ]
    (folder / "records.jsonl").write_text("".join(json.dumps(e) + "\n" for e in records))
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_a_version_0_folder_still_loads_and_resumes_into_one_journal(tmp_path):
    _write_v0_folder(tmp_path)
    records = ExperimentRecords.read(tmp_path, "val_loss", "min")
    assert records.trials[0].state == "COMPLETE" and records.trials[0].attempt == 2
    assert records.trials[0].failed_attempts == [{"attempt": 1, "state": "STALLED", "epochs_run": 1, "error": "silent"}]
    assert records.trials[1].state == "PRUNED" and records.best().number == 0
    log = EventLog.read(tmp_path)
    assert [r["kind"] for r in log.rows] == ["attempt", "ask", "ask", "decision", "tell"]
    assert next(r for r in log.rows if r["kind"] == "attempt")["epoch"] == 1  # as the old row said
    from search._tune._run import rung_history

    assert rung_history(log.rows) == {1: {1: 0.9}}  # resume rebuilds ASHA's rungs from it

    journal, entries = Journal.open(tmp_path)  # resuming: the old files are copied into one journal
    resumed = ExperimentRecords("val_loss", "min", journal=journal)
    resumed.replay(entries)
    resumed.started(2, "c", 9, {"lr": 0.3}, 3)
    journal.close()
    assert (tmp_path / JOURNAL_FILE).is_file()
    assert sorted(ExperimentRecords.read(tmp_path, "val_loss", "min").trials) == [0, 1, 2]
    assert {e["v"] for e in read_entries(tmp_path)} == {0, VERSION}


def test_a_whole_last_line_without_its_newline_is_kept_by_readers_and_the_resumed_writer(tmp_path):
    journal = Journal(tmp_path / JOURNAL_FILE)
    records = ExperimentRecords("val_loss", "min", journal=journal)
    records.started(0, "t0", 1, {"lr": 0.1}, 3)
    journal.close()
    path = tmp_path / JOURNAL_FILE
    path.write_text(path.read_text() + json.dumps({"v": VERSION, "seq": 1, "time": 1.0, "kind": "result", "number": 0,
                                                   "epoch": 1, "metrics": {"val_loss": 0.5}, "node": None,
                                                   "device": None, "at": 1.0}))  # the crash came before "\n"
    assert ExperimentRecords.read(tmp_path, "val_loss", "min").trials[0].epochs_run == 1
    journal, entries = Journal.open(tmp_path)
    records = ExperimentRecords("val_loss", "min", journal=journal)
    records.replay(entries)
    records.result(0, 2, {"val_loss": 0.4}, None)
    journal.close()
    assert ExperimentRecords.read(tmp_path, "val_loss", "min").trials[0].epochs_run == 2
    assert [e["seq"] for e in read_entries(tmp_path)] == [0, 1, 2]


def test_a_result_for_a_trial_never_started_never_reaches_the_journal(tmp_path):
    journal = Journal(tmp_path / JOURNAL_FILE)
    records = ExperimentRecords("val_loss", "min", journal=journal)
    with pytest.raises(KeyError, match="trial 7"):
        records.result(7, 1, {"val_loss": 0.5}, None)
    journal.close()
    assert read_entries(tmp_path) == []  # every later reader would otherwise trip over it


def test_a_journal_from_a_newer_hypernas_is_refused_naming_the_version(tmp_path):
    (tmp_path / JOURNAL_FILE).write_text(json.dumps({"v": VERSION + 1, "seq": 0, "time": 0.0, "kind": "x"}) + "\n")
    with pytest.raises(JournalVersionError, match=f"journal version {VERSION + 1}.*versions 0 to {VERSION}"):
        ExperimentRecords.read(tmp_path, "val_loss", "min")
    size = (tmp_path / JOURNAL_FILE).stat().st_size
    (tmp_path / JOURNAL_FILE).write_text((tmp_path / JOURNAL_FILE).read_text() + '{"v": 1, "torn')
    with pytest.raises(JournalVersionError):  # refused before the resumed writer touches the file
        Journal.open(tmp_path)
    assert (tmp_path / JOURNAL_FILE).stat().st_size > size
    assert issubclass(JournalVersionError, ConfigError)  # the CLI reports it as bad input (exit 2)


@pytest.mark.parametrize(("values", "epochs", "errored"), [
    ([0.5, 0.4, 0.3], 3, False), ([0.5], 3, False), ([0.5, 0.4, math.nan], 3, False), ([0.5, math.inf], 3, False),
    ([0.5, 0.4], 3, True), ([], 3, False),
])
def test_one_final_state_rule_for_the_records_and_for_optuna(tmp_path, values, epochs, errored):
    """The records (what Parquet, MLflow, status and best show) and the searcher (what Optuna is told) reach a
    trial's final state through the same function from the same facts."""
    expected = final_state(len(values), epochs, errored, values[-1] if values else None)
    records = ExperimentRecords("val_loss", "min")
    records.started(0, "t0", 1, {}, epochs)
    for epoch, value in enumerate(values, start=1):
        records.result(0, epoch, {"val_loss": value}, None)
    assert records.ended(0, "FAILED" if errored else None).state == expected

    cfg = load_config(tiny_config("fs", trainer="tests.search.test_nan:nan_train", space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
                                  metric={"name": "val_loss", "mode": "min"}, searcher="random",
                                  scheduler={"type": "none", "max_epochs": epochs}))
    study = AskTellStudy.create("fs", cfg.space, cfg.searcher, 0, "min", tmp_path / "optuna.journal")
    searcher = OptunaSearcher(study, cfg, EventLog(), trials=1)
    searcher.suggest("t0")
    for epoch, value in enumerate(values[:-1], start=1):
        searcher.on_trial_result("t0", {"epoch": epoch, "val_loss": value})
    searcher.on_trial_complete("t0", {"epoch": len(values), "val_loss": values[-1]} if values else None, errored)
    told = next(r for r in searcher.events.rows if r["kind"] == "tell")["state"]
    assert told == {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED", "FAILED": "FAILED"}[expected]


def test_status_and_best_read_a_version_0_folder_and_refuse_a_newer_one(tmp_path, capsys):
    from search.cli import main

    folder = tmp_path / "old"
    folder.mkdir()
    cfg = load_config(tiny_config("old", trainer="tests.search.test_nan:nan_train",
                                  space={"lr": {"type": "float", "low": 0.0, "high": 1.0}},
                                  metric={"name": "val_loss", "mode": "min"}, searcher="random"))
    (folder / "config.yaml").write_text(cfg.to_yaml())
    (folder / "state.json").write_text(json.dumps({"name": "old", "status": "finished", "trials_planned": 2,
                                                   "tracking_uri": "sqlite:///x.db"}))
    _write_v0_folder(folder)
    assert main(["status", "old", "--workdir", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["counts"] == {"COMPLETE": 1, "PRUNED": 1} and info["best_trial"] == 0
    assert main(["best", "old", "--workdir", str(tmp_path)]) == 0
    winner = json.loads(capsys.readouterr().out)
    assert winner["trial"] == 0 and winner["seed"] == 7 and winner["params"] == {"lr": 0.1}

    (folder / JOURNAL_FILE).write_text(json.dumps({"v": 99, "seq": 0, "time": 0.0, "kind": "started"}) + "\n")
    assert main(["status", "old", "--workdir", str(tmp_path)]) == 2
    assert "journal version 99" in capsys.readouterr().err
