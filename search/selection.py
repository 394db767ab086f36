"""Choosing the winner on validation data, and opening the sealed test split for it — once.

``best_trial`` reads only validation metrics. ``run_sealed_test`` is the one place that opens the test split:
it atomically claims the one-time open (a marker file created with ``O_EXCL``), retrains the winner with its
own seed on train+validation for the same number of epochs, scores the test split, and records an audit entry
in the experiment folder and on the MLflow parent run. A second open is refused unless forced, and a forced
re-open is recorded as such.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from search import _mlflow
from search.records import JOURNAL_FILE as RECORDS_JOURNAL
from search.records import ExperimentRecords, pick_best
from search.redaction import redact
from search.seeds import derive_seed
from search.workdir import ExperimentFolder, existing_experiment, write_json_atomic
from trainers import MemoryReporter, TrialSpec, resolve_trainer, sealed_data

_MARKER = "test_opened"


class SelectionError(RuntimeError):
    """No winner to select (e.g. no trial completed)."""


class TestSetAlreadyOpened(RuntimeError):
    """The sealed test split of this experiment was opened before; re-opening needs ``force``."""

    __test__ = False  # not a pytest test class


def best_trial(workdir: str | Path, name: str) -> dict[str, Any]:
    """The winner chosen on the validation metric: ``{"trial", "params", "seed", "epochs", "metric", "value", ...}``."""
    folder = existing_experiment(workdir, name)
    return _winner(folder)


def _winner(folder: ExperimentFolder) -> dict[str, Any]:
    cfg = folder.load_config()
    journal = folder.path / RECORDS_JOURNAL
    if not journal.is_file():
        raise SelectionError(f"experiment {folder.name!r} has no trials yet")
    # the journal, not trials.parquet: it holds the exact parameters (Parquet redacts secret-looking ones)
    records = ExperimentRecords.load(journal, cfg.metric.name, cfg.metric.mode, cfg.constraints)
    records.close()
    rows = [{**row, "params": records.trials[row["number"]].params} for row in records.trial_rows()]
    winner = pick_best(rows, cfg.metric.mode)
    if winner is None:
        states = ", ".join(sorted({r["state"] for r in rows})) or "none"
        raise SelectionError(f"experiment {folder.name!r} has no COMPLETE trial to select (trial states: {states})")
    return {
        "experiment": folder.name, "status": folder.read_state().get("status"), "trial": winner["number"], "metric": cfg.metric.name, "mode": cfg.metric.mode,
        "value": winner["last_value"], "best_epoch_value": winner["best_value"], "seed": winner["seed"],
        "epochs": winner["epochs"], "params": winner["params"], "trial_id": winner["trial_id"],
    }


def read_audit(folder: ExperimentFolder) -> list[dict[str, Any]]:
    return json.loads(folder.audit_file.read_text()) if folder.audit_file.is_file() else []


def _claim(folder: ExperimentFolder, force: bool) -> bool:
    """Claim the one-time open; True when this call is the first. Raises if already opened and not forced."""
    try:
        os.close(os.open(folder.path / _MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        if force:
            return False
        opened = read_audit(folder)
        when = opened[0]["opened_at_iso"] if opened else "an earlier run"
        raise TestSetAlreadyOpened(
            f"the sealed test split of experiment {folder.name!r} was already opened ({when}); another look would make "
            f"its score a biased estimate. Pass --force to re-open it anyway; the re-open is recorded as forced."
        ) from None


def test_metric_name(metric: str) -> str:
    """The test-split name of a validation metric: ``val_accuracy`` → ``test_accuracy``."""
    return "test_" + metric[4:] if metric.startswith("val_") else f"test_{metric}"


def run_sealed_test(workdir: str | Path, name: str, *, force: bool = False) -> dict[str, Any]:
    """Retrain the winner on train+validation and score it on the sealed test split, once (see module doc)."""
    folder = existing_experiment(workdir, name)
    cfg = folder.load_config()
    state = folder.read_state()
    if state.get("status") == "running":
        raise SelectionError(f"experiment {name!r} is still running; the sealed test split is opened once, for "
                             "the final winner, after the search has ended")
    winner = _winner(folder)
    trainer = resolve_trainer(cfg.trainer)
    first = _claim(folder, force)
    opened = False
    try:
        search, sealed = sealed_data(cfg.data, derive_seed(cfg.seed, "data"))
        import torch

        device = "cuda:0" if cfg.resources.gpus > 0 and torch.cuda.is_available() else "cpu"
        spec = TrialSpec(
            params={k: v for k, v in winner["params"].items() if k != "epochs"}, data=search.merged(),
            epochs=int(winner["epochs"]), seed=int(winner["seed"]), device=device, threads=cfg.resources.threads,
            deterministic=cfg.deterministic, trial_number=int(winner["trial"]),
        )
        started = time.time()
        evaluator = trainer.train(spec, MemoryReporter())
        if evaluator is None:
            raise SelectionError(f"trainer {cfg.trainer!r} returned no evaluator, so the winner cannot be scored; "
                                 "return an object with evaluate(split) -> metrics from the training function")
        test_split = sealed.open()
        opened = True
        scores = evaluator.evaluate(test_split)
    except BaseException:
        if first and not opened:  # nothing was seen: give the one-time open back
            (folder.path / _MARKER).unlink(missing_ok=True)
        raise

    metrics = {f"test_{k}": float(v) for k, v in scores.items()}
    test_name = test_metric_name(cfg.metric.name)
    gap = winner["value"] - metrics[test_name] if test_name in metrics else None
    audit = read_audit(folder)
    entry = {
        "open": len(audit) + 1, "forced": not first, "opened_at": time.time(),
        "opened_at_iso": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "trial": winner["trial"], "seed": winner["seed"],
        "epochs": winner["epochs"], "params": winner["params"], "validation_metric": cfg.metric.name,
        "validation_value": winner["value"], "test_metrics": metrics, "test_metric": test_name,
        "optimism_gap": gap,
        "test_split_sha256": sealed.fingerprint, "test_split_size": sealed.size,
        "train_split_sha256": spec.data.train.fingerprint, "retrain_seconds": round(time.time() - started, 2),
        "user": getpass.getuser(), "host": socket.gethostname(),
    }
    audit.append(entry)
    write_json_atomic(folder.audit_file, audit)
    _mlflow.log_to_run(
        state["tracking_uri"], state["parent_run_id"],
        metrics={**metrics, **({"optimism_gap": gap} if gap is not None else {})}, step=len(audit) - 1,
        tags={"hypernas.test.opened": "true", "hypernas.test.opens": len(audit), "hypernas.test.forced":
              str(not first).lower(), "hypernas.test.trial": winner["trial"],
              "hypernas.test.split_sha256": sealed.fingerprint, "hypernas.test.last_opened_at": entry["opened_at_iso"]},
        texts={"test_audit.json": json.dumps([{**a, "params": redact(a["params"])} for a in audit], indent=2)},
    )
    return entry
