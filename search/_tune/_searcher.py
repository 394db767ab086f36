"""The Ray searcher over our Optuna ask/tell study."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from search._optuna import AskTellStudy
from search._tune._common import TIME_ATTR
from search.config import ExperimentConfig
from search.constraints import constraint_values
from search.records import final_state
from search.seeds import derive_seed


class OptunaSearcher(Searcher):
    """Ray searcher over an Optuna ask/tell study. Trial numbers are Optuna's (ask order), seeds derive from them."""

    def __init__(self, study: AskTellStudy, cfg: ExperimentConfig) -> None:
        super().__init__(metric=None, mode=None)
        self.study = study
        self.cfg = cfg
        self.numbers: dict[str, int] = {}
        self.epochs: dict[str, int] = {}
        self.last_epoch: dict[str, int] = {}  # a PAUSED trial stopped by HyperBand completes with no result
        self.last_metrics: dict[str, dict] = {}  # the constrained metrics of the last result

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # metric and mode come from the experiment config, set once

    def suggest(self, trial_id: str) -> dict[str, Any]:
        number, params = self.study.ask()
        epochs = self.cfg.epochs_for(params)
        self.numbers[trial_id], self.epochs[trial_id] = number, epochs
        return {"trial_number": number, "seed": derive_seed(self.cfg.seed, number), "params": params, "epochs": epochs}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.numbers or TIME_ATTR not in result:
            return
        self.last_epoch[trial_id] = int(result[TIME_ATTR])
        if self.cfg.constraints:
            self.last_metrics[trial_id] = {c.metric: result.get(c.metric) for c in self.cfg.constraints}
        value = result.get(self.cfg.metric.name)
        if value is not None:
            self.study.report(self.numbers[trial_id], int(result[TIME_ATTR]), value)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.numbers:
            return
        if result and TIME_ATTR in result:
            # The result that made the scheduler stop a trial never reaches on_trial_result: report it here, so
            # Optuna's PRUNED value is the value at the step where the trial stopped.
            self.on_trial_result(trial_id, result)
        number, epochs = self.numbers.pop(trial_id), self.epochs.pop(trial_id)
        # Same rule as the records (final_state): a trial stopped before its first report is PRUNED unless it
        # errored; one that trained all its epochs is COMPLETE with its last value.
        state = final_state(self.last_epoch.pop(trial_id, 0), epochs, error)
        metrics = self.last_metrics.pop(trial_id, None)
        constraints = constraint_values(self.cfg.constraints, metrics) if self.cfg.constraints and metrics else None
        self.study.tell(number, state, self.study.last_value(number) if state == "COMPLETE" else None, constraints)

    def close_open_trials(self) -> None:
        """Tell Optuna about trials Tune ended without a completion event (e.g. cut by the time budget)."""
        for trial_id in list(self.numbers):
            self.on_trial_complete(trial_id, None)

    def __getstate__(self) -> dict:
        # Tune pickles its config (tuner.pkl) for its own restore; the live study is re-attached by the driver.
        return {k: v for k, v in self.__dict__.items() if k != "study"}

    def save(self, checkpoint_path: str) -> None:
        # The study itself is durable (Optuna journal); Tune only needs which trial is which number.
        Path(checkpoint_path).write_text(json.dumps(
            {"numbers": self.numbers, "epochs": self.epochs, "last_epoch": self.last_epoch}))

    def restore(self, checkpoint_path: str) -> None:
        saved = json.loads(Path(checkpoint_path).read_text())
        self.numbers, self.epochs, self.last_epoch = saved["numbers"], saved["epochs"], saved["last_epoch"]
