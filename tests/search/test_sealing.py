"""The test-split ledger: one look per split (by content), repeats answered, refusals, crash safety, audit."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search import run_experiment, run_sealed_test
from search.cli import main
from search.sealing import LEDGER_FILE, TestLedger, decide, new_open, source_identity
from search.selection import TestSetAlreadyOpened
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[2]


def _config(name, seed=0, **data):
    return tiny_config(
        name, seed=seed, trainer="tests.helpers:scored_train",
        data={"source": "digits", **data},
        space={"x": {"type": "float", "low": 0.0, "high": 1.0}, "batch_size": 64},
        metric={"name": "val_loss", "mode": "min"},
        searcher={"type": "random"},
        scheduler={"type": "none", "max_epochs": 2},  # every trial completes: the winner depends on the seed only
        budget={"trials": 3, "max_concurrent": 2},
    )


def _run(workdir, name, seed=0, overwrite=False, **data):
    out = io.StringIO()
    run_experiment(_config(name, seed, **data), workdir=workdir, stream=out, overwrite=overwrite)
    return out.getvalue()


# --- the rule, on a real ledger file -----------------------------------------------------------------------------


def _open(ledger, model, forced=False, complete=True, abort=False):
    with ledger.locked():
        event = ledger.append(new_open("split-a", {"source": "digits"}, 42, "exp", None, model,
                                       {"trial": 0, "seed": 1, "epochs": 2, "params": {}}, forced))
        if complete:
            ledger.append({"event": "complete", "id": event["id"], "test_metrics": {"test_loss": 0.5},
                           "test_metric": "test_loss", "validation_metric": "val_loss", "validation_value": 0.4,
                           "optimism_gap": -0.1})
        if abort:
            ledger.append({"event": "abort", "id": event["id"]})
    return event


def test_the_ledger_rule(tmp_path):
    ledger = TestLedger(tmp_path)
    assert decide(ledger.looks("split-a"), "m1", force=False).action == "open"
    _open(ledger, "m0", abort=True, complete=False)  # withdrawn before anything was read: not a look
    assert decide(ledger.looks("split-a"), "m1", force=False).action == "open"
    _open(ledger, "m1")
    assert decide(ledger.looks("split-a"), "m1", force=False).action == "repeat"
    assert decide(ledger.looks("split-b"), "m2", force=False).action == "open"  # another split is fresh
    refused = decide(ledger.looks("split-a"), "m2", force=False)
    assert refused.action == "refuse" and refused.prior.model == "m1"
    forced = decide(ledger.looks("split-a"), "m2", force=True)
    assert forced.action == "open" and forced.forced
    assert decide(ledger.looks("split-a"), "m1", force=True).forced  # forcing the same model re-opens, forced


def test_an_open_without_a_result_still_counts_and_a_torn_line_is_tolerated(tmp_path):
    ledger = TestLedger(tmp_path)
    _open(ledger, "m1", complete=False)  # the process died while scoring
    with open(ledger.path, "a") as handle:
        handle.write('{"event": "comp')  # and its last write was torn
    looks = ledger.looks("split-a")
    assert [look.status for look in looks] == ["incomplete"]
    assert decide(looks, "m2", force=False).action == "refuse"
    assert decide(looks, "m1", force=False).action == "open"  # the same model: no new information, no refusal


def test_an_event_after_a_torn_line_is_a_line_of_its_own(tmp_path):
    ledger = TestLedger(tmp_path)
    _open(ledger, "m1", complete=False)
    with open(ledger.path, "a") as handle:
        handle.write('{"event": "open", "id": "x", "spl')  # the intent of a second look, torn by a crash
    _open(ledger, "m2")
    assert [(look.model, look.status) for look in ledger.looks()] == [("m1", "incomplete"), ("m2", "complete")]


def test_a_complete_whose_open_line_was_lost_still_counts(tmp_path):
    ledger = TestLedger(tmp_path)
    with ledger.locked():
        ledger.append({"event": "complete", "id": "lost", "split": "split-a", "model": "m1", "experiment": "e",
                       "trial": 3, "test_metrics": {"test_loss": 0.5}, "test_metric": "test_loss"})
    assert decide(ledger.looks("split-a"), "m2", force=False, split="split-a").action == "refuse"


def test_a_parquet_source_is_the_same_source_after_a_trip_through_the_ledger(tmp_path):
    from trainers import ParquetSource

    source = ParquetSource(str(tmp_path / "t.parquet"), label="y", features=("a", "b"))
    assert source_identity(source) == json.loads(json.dumps(source_identity(source)))
    assert source_identity(source)["features"] == ["a", "b"]


def _forced_open(workdir, model):
    _open(TestLedger(workdir), model, forced=True)


def test_concurrent_forced_opens_lose_no_entry(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_forced_open, args=(tmp_path, f"m{i}")) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert all(worker.exitcode == 0 for worker in workers)
    looks = TestLedger(tmp_path).looks()
    assert sorted(look.model for look in looks) == [f"m{i}" for i in range(6)]
    assert all(look.status == "complete" for look in looks)


# --- real experiments in one workdir ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(ray_session, tmp_path_factory):
    monkey = pytest.MonkeyPatch()
    monkey.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield tmp_path_factory.mktemp("sealing")
    monkey.undo()


def test_overwrite_and_other_seeds_do_not_reopen_the_split(workdir, capsys):
    _run(workdir, "first")
    first = run_sealed_test(workdir, "first")
    assert first["open"] == 1 and not first["forced"] and not first["repeat"]

    # the README's command, repeated: the folder is replaced, the ledger is not
    _run(workdir, "first", overwrite=True)
    assert not (workdir / "first" / "test_audit.json").exists()
    capsys.readouterr()
    assert main(["test", "first", "--workdir", str(workdir)]) == 0
    captured = capsys.readouterr()
    repeat = json.loads(captured.out.split("\n\n")[0])
    assert repeat["repeat"] and repeat["ledger_id"] == first["ledger_id"] and repeat["open"] == 1
    assert repeat["test_metrics"] == first["test_metrics"] and "REPEAT" in captured.out

    # another seed over the same data: same test rows, another winner -> refused, naming the earlier look
    _run(workdir, "other", seed=1)
    with pytest.raises(TestSetAlreadyOpened, match="experiment 'first', trial") as refused:
        run_sealed_test(workdir, "other")
    assert "test_loss=" in str(refused.value) and "--force" in str(refused.value)
    assert main(["test", "other", "--workdir", str(workdir)]) == 3
    assert main(["test", "other", "--workdir", str(workdir), "--force"]) == 0
    forced = json.loads(capsys.readouterr().out.split("\n\n")[0])
    assert forced["forced"] and forced["open"] == 2 and not forced["repeat"]

    assert main(["audit", "--workdir", str(workdir), "--json"]) == 0
    looks = json.loads(capsys.readouterr().out)
    assert [(look["experiment"], look["forced"], look["status"]) for look in looks] == [
        ("first", False, "complete"), ("other", True, "complete")]
    assert [r["experiment"] for r in looks[0]["repeats"]] == ["first"]
    assert main(["audit", "other", "--workdir", str(workdir)]) == 0
    table = capsys.readouterr().out
    assert "other" in table and "forced" in table and "first " not in table

    # a new split_seed for the same data: the run says how many new test rows were trained on before
    output = _run(workdir, "moved", split_seed=7)
    assert "warning: data.split_seed is 7" in output and "split_seed 42 was opened before" in output
    overlap = int(output.split("): ")[1].split(" of the ")[0])
    assert overlap > 0  # digits: a new stratified draw of ~20 % mostly lands on rows that were trained on


def test_a_split_sharing_rows_with_an_opened_one_is_judged_as_that_split(workdir, capsys):
    # a larger test fraction draws a superset of the opened digits test rows: not a fresh split
    output = _run(workdir, "wider", seed=2, test_fraction=0.3)
    assert "shares rows with a test split opened before" in output
    with pytest.raises(TestSetAlreadyOpened, match=r"of this test split's \d+ rows were in a test split that"):
        run_sealed_test(workdir, "wider")


def test_a_crash_while_scoring_leaves_a_recorded_look(workdir, capsys):
    # a split no one has looked at: other data
    _run(workdir, "crash", source="mnist1d", num_samples=1000)
    env = {**os.environ, "HYPERNAS_TEST_KILL_WHILE_SCORING": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-m", "search.cli", "test", "crash", "--workdir", str(workdir)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -9
    looks = [look for look in TestLedger(workdir).looks() if look.experiment == "crash"]
    assert [look.status for look in looks] == ["incomplete"]  # intent fsynced before the rows were read
    assert main(["audit", "crash", "--workdir", str(workdir)]) == 0
    assert "incomplete" in capsys.readouterr().out
    # the same model may be scored again (nothing new is learnt); the open is then recorded with its result
    entry = run_sealed_test(workdir, "crash")
    assert not entry["forced"] and entry["open"] == 2
    assert (workdir / LEDGER_FILE).read_text().count('"event": "complete"') >= 1


def test_an_experiment_from_before_split_seed_keeps_its_test_rows(tmp_path):
    """Its digits test rows were drawn with the experiment's data seed: resume and test must see the same rows."""
    import yaml

    from search.seeds import derive_seed
    from search.workdir import ExperimentFolder

    folder = ExperimentFolder(tmp_path, "old")
    folder.path.mkdir()
    config = _config("old", seed=5)
    folder.config_file.write_text(yaml.safe_dump(config))  # no data.split_seed, as written before it existed
    assert folder.load_config().data.split_seed == derive_seed(5, "data")
    folder.config_file.write_text(yaml.safe_dump({**config, "data": {"source": "digits", "split_seed": 42}}))
    assert folder.load_config().data.split_seed == 42
