"""Choosing the winner on validation data, and opening the sealed test split for it — once per split.

``best_trial`` reads only validation metrics. ``run_sealed_test`` is the one place that opens the test split. It
asks the workdir's test-split ledger (:mod:`search.sealing`) first: the first look at a split is free, the
identical model is answered from the ledger without opening anything, and any other model is refused unless
forced. It then retrains the winner with its own seed on train+validation for the same number of epochs,
records the intent in the ledger (fsynced), opens and scores the split, records the result, and writes the
audit to the experiment folder and the MLflow parent run.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
import time
from pathlib import Path
from typing import Any, TextIO

from search import _mlflow, accounting
from search.accounting import energy_summary
from search.journal import has_journal
from search.pareto import SelectionRuleError, select
from search.progress import RetrainProgress
from search.records import ExperimentRecords, pick_best
from search.redaction import redact
from search.seeds import derive_seed
from search.sealing import Decision, SelectionError, TestLedger, TestSetAlreadyOpened, decide, describe, model_key
from search.sealing import new_open, source_identity
from search.sealing import split_change_warnings
from search.workdir import ExperimentFolder, existing_experiment, refuse_if_simulated, write_json_atomic
from trainers import MemoryReporter, TrialSpec, resolve_trainer, sealed_data
from trainers.energy import EnergyMeter
from trainers.hardware import pick_device


def best_trial(workdir: str | Path, name: str, *, allow_interrupted: bool = False) -> dict[str, Any]:
    """The winner chosen on the validation metric: ``{"trial", "params", "seed", "epochs", "metric", "value", ...}``.

    An interrupted experiment's leader is not a final winner: it is refused unless ``allow_interrupted``."""
    folder = existing_experiment(workdir, name)
    _check_ended(folder, "its leader so far is not the winner", allow_interrupted)
    return _winner(folder)


def _check_ended(folder: ExperimentFolder, why: str, allow_interrupted: bool) -> None:
    status = folder.read_state().get("status")
    if status == "running":
        raise SelectionError(f"experiment {folder.name!r} is still running; {why} until the search has ended")
    if status == "interrupted" and not allow_interrupted:
        raise SelectionError(
            f"experiment {folder.name!r} was interrupted before its budget was spent, so {why}; finish it with "
            f"`hypernas resume {folder.name}`, or pass --allow-interrupted to use the trials it has")


def _winner(folder: ExperimentFolder) -> dict[str, Any]:
    cfg = folder.load_config()
    if not has_journal(folder.path):
        raise SelectionError(f"experiment {folder.name!r} has no trials yet")
    # the journal, not trials.parquet: it holds the exact parameters (Parquet redacts secret-looking ones)
    records = ExperimentRecords.read(folder.path, cfg.metric.name, cfg.metric.mode, cfg.constraints,
                                     objectives=cfg.objectives)
    rows = [{**row, "params": records.trials[row["number"]].params} for row in records.trial_rows()]
    selection: dict[str, Any] = {}
    metric, mode = cfg.metric.name, cfg.metric.mode
    if cfg.multi_objective:
        front = [row for row in rows if row["pareto"]]
        try:  # validation values only: the objectives are what the trials reported on the validation split
            winner = select(front, records.objectives, cfg.select.rule, cfg.select.objective, cfg.select.subject_to)
        except SelectionRuleError as err:
            raise SelectionError(f"experiment {folder.name!r}: {err}; the rule is fixed in its config "
                                 f"(select: {cfg.select.to_dict()})") from None
        if cfg.select.objective is not None:
            metric, mode = cfg.select.objective, next(o.mode for o in cfg.objectives if o.name == cfg.select.objective)
        selection = {"selection": {"rule": cfg.select.to_dict(), "description": cfg.select.describe(),
                                   "front": [row["number"] for row in front]},
                     "objectives": dict(winner["objective_values"])}
    else:
        winner = pick_best(rows, cfg.metric.mode)
    if winner is None:
        states = ", ".join(sorted({r["state"] for r in rows})) or "none"
        raise SelectionError(f"experiment {folder.name!r} has no COMPLETE trial to select (trial states: {states})")
    return {
        "experiment": folder.name, "status": folder.read_state().get("status"), "trial": winner["number"],
        "metric": metric, "mode": mode, "value": winner["objective_values"].get(metric, winner["last_value"]),
        "best_epoch_value": winner["best_value"] if metric == cfg.metric.name else None, "seed": winner["seed"],
        "epochs": winner["epochs"], "params": winner["params"], "trial_id": winner["trial_id"], **selection,
    }


def pareto_report(workdir: str | Path, name: str, *, allow_interrupted: bool = False) -> dict[str, Any]:
    """A multi-objective experiment's Pareto front (COMPLETE, feasible trials; :mod:`search.pareto`) and the point
    its ``select:`` rule picks: ``{"objectives", "front": [{"trial", "values", "params", "selected"}], "selected",
    "rule"}``. Validation values only: nothing here reads the test split."""
    folder = existing_experiment(workdir, name)
    _check_ended(folder, "its front so far is not final", allow_interrupted)
    cfg = folder.load_config()
    if not cfg.multi_objective:
        raise SelectionError(f"experiment {name!r} has one objective ({cfg.metric.name}); its winner is "
                             f"`hypernas best {name}`")
    winner = _winner(folder)
    records = ExperimentRecords.read(folder.path, cfg.metric.name, cfg.metric.mode, cfg.constraints,
                                     objectives=cfg.objectives)
    front = [{"trial": row["number"], "values": row["objective_values"], "params": records.trials[row["number"]].params,
              "selected": row["number"] == winner["trial"]} for row in records.pareto_front()]
    return {"experiment": name, "objectives": [{"name": o.name, "mode": o.mode} for o in cfg.objectives],
            "front": front, "selected": winner, "rule": winner["selection"]["rule"],
            "rule_description": winner["selection"]["description"]}


def read_audit(folder: ExperimentFolder) -> list[dict[str, Any]]:
    return folder.read_audit()


def test_metric_name(metric: str) -> str:
    """The test-split name of a validation metric: ``val_accuracy`` → ``test_accuracy``."""
    return "test_" + metric[4:] if metric.startswith("val_") else f"test_{metric}"


def run_sealed_test(workdir: str | Path, name: str, *, force: bool = False,
                    allow_interrupted: bool = False, progress: TextIO | None = None) -> dict[str, Any]:
    """Score the winner of ``name`` on the sealed test split, under the workdir ledger's rules (module doc).

    The retrain's progress goes to ``progress`` (default stderr: stdout is the ``test`` verb's JSON), a line per
    epoch. Returns the audit entry; ``entry["repeat"]`` is true when it was answered from an earlier look.
    Raises :class:`TestSetAlreadyOpened` when another model was scored on the split before (unless ``force``).
    """
    folder = existing_experiment(workdir, name)
    refuse_if_simulated(folder, "test", "nothing was trained, so there is no model to score on the test split")
    _check_ended(folder, "the sealed test split is opened once, for the final winner,", allow_interrupted)
    cfg = folder.load_config()
    state = folder.read_state()
    winner = _winner(folder)
    trainer = resolve_trainer(cfg.trainer)
    search, sealed = sealed_data(cfg.data, derive_seed(cfg.seed, "data"))
    train = search.merged()
    ledger = TestLedger(folder.workdir)
    model = model_key(ledger.salt(), cfg.trainer, winner["params"], winner["seed"], winner["epochs"],
                      cfg.deterministic, train.train.fingerprint)
    warnings = split_change_warnings(folder.workdir, cfg.data)
    decision = _decision(ledger, sealed.fingerprint, sealed.row_digests, model, force)
    if decision.action == "repeat":
        return _record_repeat(folder, ledger, decision, state, winner, warnings)

    device = pick_device(cfg.resources.gpus > 0)
    spec = TrialSpec(
        params={k: v for k, v in winner["params"].items() if k != "epochs"}, data=train,
        epochs=int(winner["epochs"]), seed=int(winner["seed"]), device=device, threads=cfg.resources.threads,
        deterministic=cfg.deterministic, trial_number=int(winner["trial"]),
    )
    started = time.time()
    # the retrain has its device to itself: charged in full
    meter = EnergyMeter(device, cpu_watts_per_core=cfg.energy.cpu_watts_per_core)
    try:
        reporter = RetrainProgress(MemoryReporter(), int(winner["trial"]), spec.epochs, winner["metric"],
                                   progress)  # None: stderr
        reporter.begin(str(device))
        evaluator = trainer.train(spec, reporter)  # the split is still sealed while the winner retrains
        retrain_energy = {"retrain_energy_j": meter.lap(), "retrain_energy_source": meter.source}
    finally:
        meter.close()
    if evaluator is None:
        raise SelectionError(f"trainer {cfg.trainer!r} returned no evaluator, so the winner cannot be scored; "
                             "return an object with evaluate(split) -> metrics from the training function")
    retrain_s = round(time.time() - started, 2)

    with ledger.locked():
        # decided again under the lock: another process may have scored a model on this split meanwhile
        decision = _decision(ledger, sealed.fingerprint, sealed.row_digests, model, force)
        if decision.action == "repeat":
            return _record_repeat(folder, ledger, decision, state, winner, warnings, locked=True)
        looks = [look for look in ledger.looks() if look.counts and look.shares(sealed.fingerprint, sealed.row_digests)]
        intent = ledger.append(new_open(sealed.fingerprint, source_identity(cfg.data), cfg.data.split_seed,
                                        folder.name, state.get("parent_run_id"), model,
                                        {**winner, "params": redact(winner["params"])}, decision.forced,
                                        rows=sealed.row_digests))
        try:
            test_split = sealed.open()
        except BaseException:
            ledger.append({"event": "abort", "id": intent["id"]})  # nothing was seen: withdraw the intent
            raise
        scores = evaluator.evaluate(test_split)  # a crash here leaves the open without a result: still a look
        metrics = {f"test_{k}": float(v) for k, v in scores.items()}
        test_name = test_metric_name(winner["metric"])
        gap = winner["value"] - metrics[test_name] if test_name in metrics else None
        ledger.append({"event": "complete", "id": intent["id"], "split": sealed.fingerprint, "model": model,
                       "experiment": folder.name, "trial": int(winner["trial"]),
                       "test_metrics": metrics, "test_metric": test_name,
                       "validation_metric": winner["metric"], "validation_value": winner["value"],
                       "optimism_gap": gap, **{k: winner[k] for k in ("selection", "objectives") if k in winner}})

    entry = {
        "open": len(looks) + 1, "forced": decision.forced, "repeat": False, "ledger_id": intent["id"],
        "opened_at": intent["time"], "opened_at_iso": intent["at"], "trial": winner["trial"],
        "seed": winner["seed"], "epochs": winner["epochs"], "params": winner["params"], "model": model,
        "validation_metric": winner["metric"], "validation_value": winner["value"], "test_metrics": metrics,
        "test_metric": test_name, "optimism_gap": gap, "test_split_sha256": sealed.fingerprint,
        "test_split_size": sealed.size, "split_seed": cfg.data.split_seed,
        "train_split_sha256": train.train.fingerprint, "retrain_seconds": retrain_s, "user": intent["user"],
        "host": intent["host"], "warnings": warnings, **retrain_energy,
        **{k: winner[k] for k in ("selection", "objectives") if k in winner},
    }
    _write_audit(folder, state, entry, metrics={**metrics, **({"optimism_gap": gap} if gap is not None else {})},
                 cfg=cfg)
    return entry


def _decision(ledger: TestLedger, split: str, rows: frozenset[bytes], model: str, force: bool) -> Decision:
    """The ledger's rule for ``model`` on this split, judged with every look at a split sharing rows with it."""
    looks = [look for look in ledger.looks() if look.shares(split, rows)]
    decision = decide(looks, model, force, split)
    if decision.action == "refuse":
        prior = decision.prior
        same = "this test split" if prior.split == split else (
            f"{prior.shares(split, rows)} of this test split's {len(rows)} rows were in a test split that")
        raise TestSetAlreadyOpened(
            f"{same} (sha256 {prior.split[:12]}…) was already opened in this workdir for another model: "
            f"{describe(prior)}; another look would make its score a biased estimate. Pass --force to "
            f"open it anyway; the look is recorded as forced (see `hypernas audit`).")
    return decision


def _record_repeat(folder: ExperimentFolder, ledger: TestLedger, decision: Decision, state: dict[str, Any],
                   winner: dict[str, Any], warnings: list[str], *, locked: bool = False) -> dict[str, Any]:
    """Answer the identical model from the ledger: nothing is opened; the repeat is recorded."""
    prior = decision.prior
    assert prior is not None and prior.result is not None
    with (contextlib.nullcontext(ledger) if locked else ledger.locked()):
        event = ledger.append({"event": "repeat", "id": prior.id, "experiment": folder.name,
                               "parent_run_id": state.get("parent_run_id"), "trial": int(winner["trial"]),
                               "user": getpass.getuser(), "host": socket.gethostname()})
    result = prior.result
    opens = [look.id for look in ledger.looks(prior.split) if look.counts]
    entry = {
        "open": opens.index(prior.id) + 1, "forced": False, "repeat": True, "ledger_id": prior.id,
        "repeat_of": {"experiment": prior.experiment, "trial": prior.trial, "opened_at_iso": prior.at},
        "opened_at": event["time"], "opened_at_iso": event["at"], "trial": winner["trial"],
        "seed": winner["seed"], "epochs": winner["epochs"], "params": winner["params"], "model": prior.model,
        "validation_metric": result["validation_metric"], "validation_value": winner["value"],
        "test_metrics": result["test_metrics"], "test_metric": result["test_metric"],
        "optimism_gap": result["optimism_gap"], "test_split_sha256": prior.split,
        "test_split_size": None, "split_seed": prior.record.get("split_seed"),
        "train_split_sha256": None, "retrain_seconds": 0.0, "user": event["user"], "host": event["host"],
        "warnings": warnings, **{k: winner[k] for k in ("selection", "objectives") if k in winner},
    }
    _write_audit(folder, state, entry, metrics={})
    return entry


def _write_audit(folder: ExperimentFolder, state: dict[str, Any], entry: dict[str, Any],
                 metrics: dict[str, float], cfg: Any = None) -> None:
    """The experiment's own view of its looks: ``test_audit.json`` and the MLflow parent run (with the energy
    bill, the retrain now included, when ``cfg`` is given)."""
    audit = read_audit(folder)
    audit.append(entry)
    write_json_atomic(folder.audit_file, audit)
    if cfg is not None:
        records = ExperimentRecords.read(folder.path, cfg.metric.name, cfg.metric.mode, cfg.constraints)
        metrics = {**metrics, **accounting.parent_metrics(
            energy_summary(records.energy_totals(), audit, cfg.energy.grid_gco2_per_kwh))}
    looks = [a for a in audit if not a["repeat"]]
    _mlflow.log_to_run(
        state["tracking_uri"], state["parent_run_id"], metrics=metrics, step=len(audit) - 1,
        tags={"hypernas.test.opened": "true", "hypernas.test.opens": len(looks),
              "hypernas.test.repeats": len(audit) - len(looks), "hypernas.test.forced": str(entry["forced"]).lower(),
              "hypernas.test.repeat": str(entry["repeat"]).lower(), "hypernas.test.trial": entry["trial"],
              "hypernas.test.split_sha256": entry["test_split_sha256"],
              "hypernas.test.last_opened_at": entry["opened_at_iso"],
              **({"hypernas.test.selection": entry["selection"]["description"]} if "selection" in entry else {})},
        texts={"test_audit.json": json.dumps([{**a, "params": redact(a["params"])} for a in audit], indent=2)},
    )
