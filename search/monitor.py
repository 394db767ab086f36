"""The driver-side sink of trial events: records (Parquet), MLflow child runs and the live view, in one place."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

from search._mlflow import TrackingWriter
from search.progress import ProgressView
from search.events import EventLog
from search.records import ExperimentRecords, final_state

_WRITE_EVERY_S = 2.0  # Parquet is rewritten at most this often while running (and always at the end)


def trial_run_name(number: int) -> str:
    return f"trial-{number:04d}"


class Monitor:
    """Receives trial events from the executor adapter and fans them out. All calls come from the driver."""

    def __init__(self, records: ExperimentRecords, tracker: TrackingWriter, view: ProgressView, folder: Path) -> None:
        self.records = records
        self.tracker = tracker
        self.view = view
        self.folder = folder
        self.events = EventLog()  # sampler asks/tells and scheduler decisions, written beside the records
        self._last_write = 0.0
        self._logged_epoch: dict[int, int] = {}  # a restarted trial re-reports epochs MLflow already has

    def trial_started(self, number: int, trial_id: str, seed: int, params: Mapping[str, Any], epochs: int,
                      attempt: int = 1) -> None:
        first_start = number not in self.records.trials
        self.records.started(number, trial_id, seed, params, epochs, attempt)
        if first_start:  # a paused-and-resumed trial keeps its child run
            self.tracker.trial_started(
                number, trial_run_name(number), {**params, "epochs": epochs},
                {"hypernas.trial_number": number, "hypernas.seed": seed, "hypernas.state": "RUNNING",
                 "hypernas.role": "trial", "hypernas.trial_id": trial_id,
                 # MLflow params are text; the typed copy lets `hypernas replay` rebuild the exact configuration
                 "hypernas.params": json.dumps({**params, "epochs": epochs}, sort_keys=True)},
            )
        self.view.update(self.records)

    def trial_result(self, number: int, epoch: int, metrics: Mapping[str, float], node: str | None,
                     device: str | None = None) -> None:
        self.records.result(number, epoch, metrics, node, device)
        if epoch > self._logged_epoch.get(number, 0):
            self._logged_epoch[number] = epoch
            self.tracker.trial_metrics(number, epoch, metrics, int(time.time() * 1000))

    def attempt_failed(self, number: int, attempt: int, state: str, error: str) -> None:
        """One attempt of a trial ended badly (STALLED, PREEMPTED or FAILED); the trial may be retried."""
        record = self.records.attempt_failed(number, attempt, state, error)
        self.events.attempt(number, attempt, state, record.epochs_run)
        self.tracker.trial_notes(number, {"hypernas.attempts": attempt, f"hypernas.attempt{attempt}.state": state},
                                 {f"attempt-{attempt}-{state.lower()}.txt": error})
        self.view.update(self.records)

    def stall_killed(self, number: int, silent_s: float) -> None:
        self.events.stall(number, silent_s)

    def trial_ended(self, number: int, state: str, error: str | None = None, reason: str | None = None) -> None:
        record = self.records.ended(number, state, error)
        tags = {"hypernas.stop_reason": reason, "hypernas.state": state, "hypernas.epochs_run": record.epochs_run,
                "hypernas.node": record.node, "hypernas.device": record.device, "hypernas.attempts": record.attempt,
                "hypernas.wall_time_s": round(record.wall_time_s, 3)}
        ratio = self.records.straggler_ratios().get(number)
        if ratio is not None:
            tags |= {"hypernas.straggler_ratio": round(ratio, 3),
                     "hypernas.straggler": str(ratio >= self.records.straggler_factor).lower()}
        if record.violations:
            tags |= {"hypernas.feasible": "false", "hypernas.violations": "; ".join(record.violations)}
        if record.best_value is not None:
            tags |= {"hypernas.best_value": record.best_value, "hypernas.last_value": record.last_value}
        self.tracker.trial_ended(number, state, {k: v for k, v in tags.items() if v is not None},
                                 {"traceback.txt": error} if error and state == "FAILED" else {})
        self.view.update(self.records)
        self._write(force=False)

    def tick(self) -> None:
        self.view.update(self.records)
        self._write(force=False)

    def _write(self, *, force: bool) -> tuple[Path, Path, Path] | None:
        if not force and time.monotonic() - self._last_write < _WRITE_EVERY_S:
            return None
        self._last_write = time.monotonic()
        return (*self.records.write(self.folder), self.events.write(self.folder))

    def finish(self, reason: str = "the experiment ended while it ran") -> tuple[Path, Path, Path]:
        """Close trials Tune ended without an event (time budget, interrupt), then write everything."""
        for record in list(self.records.trials.values()):
            if record.state == "RUNNING":
                self.trial_ended(record.number, final_state(record.epochs_run, record.epochs, errored=False),
                                 reason=reason)
        self.view.update(self.records)  # prints only if the last line printed is not already the final state
        self.view.close()
        return self._write(force=True)
