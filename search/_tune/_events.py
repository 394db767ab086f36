"""Tune's events, turned into calls on the driver's Monitor."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ray import tune

from search._tune._cluster import node_name
from search._tune._common import RESERVED_KEYS, TIME_ATTR
from search.records import final_state


class EventBridge(tune.Callback):
    """Tune callback → :class:`search.monitor.Monitor` calls, keyed by our trial numbers."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor

    def __getstate__(self) -> dict:
        return {}  # the monitor is driver state (threads, open stores); Tune's pickled config does not need it

    @staticmethod
    def _number(trial: Any) -> int:
        return int(trial.config["trial_number"])

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        config = trial.config
        self.monitor.trial_started(self._number(trial), trial.trial_id, int(config["seed"]), dict(config["params"]),
                                   int(config["epochs"]))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if TIME_ATTR not in result:
            return
        metrics = {k: v for k, v in result.items()
                   if k not in RESERVED_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.monitor.trial_result(self._number(trial), int(result[TIME_ATTR]), metrics, node_name(result),
                                  result.get("device"))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        state = final_state(int(last.get(TIME_ATTR, 0)), int(trial.config["epochs"]), errored=False)
        self.monitor.trial_ended(self._number(trial), state)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = None
        if trial.error_file and os.path.exists(trial.error_file):
            error = Path(trial.error_file).read_text(errors="replace")
        self.monitor.trial_ended(self._number(trial), "FAILED", error=error or "trial failed (no traceback recorded)")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.monitor.tick()
