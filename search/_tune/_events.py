"""Tune's events, turned into calls on the driver's Monitor — and the per-trial stall watchdog.

Ray Tune has no per-trial timeout (ray#47475). :class:`EventBridge` times every running trial from its last
report; one silent for ``stall_timeout_s`` has its actor killed, which Tune handles as any trial failure: a
restart from the last checkpoint while ``max_retries`` allows, else the end of the trial. Each failed attempt is
classified — STALLED (killed by the watchdog), PREEMPTED (its node was lost) or FAILED (an exception) — and
recorded before the trial goes on.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.experiment import Trial

from search._tune._cluster import node_name
from search._tune._common import RESERVED_KEYS, TIME_ATTR
from search.oneshot import GENOTYPE_KEY

_NODE_LOST = re.compile(r"node (has )?died|NodeDiedError|node .* (was )?(lost|terminated|removed)", re.IGNORECASE)
# How a lost node first shows, before Ray's health checks have declared it dead (that takes ~15 s).
_CONNECTION_LOST = re.compile(r"is unavailable|Socket closed|failed to connect|connection reset", re.IGNORECASE)
_NODE_VERDICT_S = 60.0  # how long an attempt that lost its connection waits for its node's status


class EventBridge(tune.Callback):
    """Tune callback → :class:`search.monitor.Monitor` calls, keyed by our trial numbers."""

    def __init__(self, monitor: Any, stall_timeout_s: float | None = None,
                 is_held: Any = lambda trial: False) -> None:
        self.monitor = monitor
        self.stall_timeout_s = stall_timeout_s
        self.is_held = is_held  # strict mode holds trials at rungs on purpose: they are waiting, not stalled
        self.last_report: dict[str, float] = {}  # trial id -> monotonic time of its last sign of life
        self.killed: set[str] = set()  # trial ids whose actor the watchdog killed (this attempt)
        self.node_ids: dict[str, str] = {}  # trial id -> the node its last result came from
        # attempts that lost their connection while every node was still listed alive:
        # (number, attempt, its node id if it had reported, nodes alive then, deadline for a verdict)
        self.suspects: list[tuple[int, int, str | None, set[str], float]] = []
        self._last_check = 0.0

    def __getstate__(self) -> dict:
        return {}  # the monitor is driver state (threads, open stores); Tune's pickled config does not need it

    @staticmethod
    def _number(trial: Trial) -> int:
        return int(trial.config["trial_number"])

    def on_trial_start(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        config = trial.config
        self.last_report[trial.trial_id] = time.monotonic()
        self.killed.discard(trial.trial_id)
        self.monitor.trial_started(self._number(trial), trial.trial_id, int(config["seed"]), dict(config["params"]),
                                   int(config["epochs"]), attempt=int(config.get("attempt", 1)),
                                   phase=config.get("phase"))

    def on_trial_result(self, iteration: int, trials: list, trial: Trial, result: dict, **info: Any) -> None:
        self.last_report[trial.trial_id] = time.monotonic()
        if "node_id" in result:
            self.node_ids[trial.trial_id] = result["node_id"]
        if TIME_ATTR not in result:
            return
        metrics = {k: v for k, v in result.items()
                   if k not in RESERVED_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}
        source = result.get("energy_source")
        self.monitor.trial_result(self._number(trial), int(result[TIME_ATTR]), metrics, node_name(result),
                                  result.get("device"), energy_source=source if isinstance(source, str) else None)
        if isinstance(result.get(GENOTYPE_KEY), str):  # a one-shot search: the genotype derived so far
            self.monitor.trial_derived(self._number(trial), int(result[TIME_ATTR]), result[GENOTYPE_KEY])

    def on_trial_complete(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self.last_report.pop(trial.trial_id, None)
        self.monitor.trial_ended(self._number(trial))  # ended without an error: the records' final_state decides

    # -- failures -------------------------------------------------------------------------------------------------
    def _attempt_state(self, trial: Trial, error: str) -> str:
        if trial.trial_id in self.killed:
            return "STALLED"
        node_id = self.node_ids.get(trial.trial_id)
        alive = {n["NodeID"]: n["Alive"] for n in ray.nodes()}
        if (node_id is not None and alive.get(node_id) is False) or _NODE_LOST.search(error or ""):
            return "PREEMPTED"
        return "FAILED"

    @staticmethod
    def _last_error(trial: Trial) -> str:
        if not trial.error_file or not os.path.exists(trial.error_file):
            return "trial failed (no traceback recorded)"
        text = Path(trial.error_file).read_text(errors="replace")
        return "Failure #" + text.split("Failure #")[-1] if "Failure #" in text else text

    def _record_attempt(self, trial: Trial, attempt: int, error: str) -> None:
        state = self._attempt_state(trial, error)
        self.monitor.attempt_failed(self._number(trial), attempt, state, error)
        if state == "FAILED" and _CONNECTION_LOST.search(error):
            # maybe its node is gone and Ray does not know yet (a trial that has not reported yet has no known
            # node: any node dying meanwhile counts) — decide once Ray does
            alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
            self.suspects.append((self._number(trial), attempt, self.node_ids.get(trial.trial_id), alive,
                                  time.monotonic() + _NODE_VERDICT_S))

    def settle(self) -> None:
        """At the end of a run: wait (up to the verdict deadline) until Ray has decided about suspect nodes."""
        while self.suspects:
            self._last_check = 0.0
            self._settle_suspects()
            if self.suspects:
                time.sleep(1.0)

    def _settle_suspects(self) -> None:
        if not self.suspects or time.monotonic() - self._last_check < 1.0:
            return
        self._last_check = time.monotonic()
        alive_now = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        still = []
        for number, attempt, node_id, alive_then, deadline in self.suspects:
            lost = alive_then - alive_now
            if (node_id in lost) if node_id else bool(lost):
                self.monitor.attempt_reclassified(number, attempt, "PREEMPTED")
            elif time.monotonic() < deadline:
                still.append((number, attempt, node_id, alive_then, deadline))
        self.suspects = still

    def on_trial_recover(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        attempt = int(trial.config.get("attempt", 1))
        self._record_attempt(trial, attempt, self._last_error(trial))
        # Tune restarts the trial with trial.config: the next attempt knows its number (fault drills use it).
        trial.config["attempt"] = attempt + 1
        self.last_report.pop(trial.trial_id, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        error = self._last_error(trial)
        self._record_attempt(trial, int(trial.config.get("attempt", 1)), error)
        self.last_report.pop(trial.trial_id, None)
        self.monitor.trial_ended(self._number(trial), "FAILED", error=error)

    # -- the watchdog ---------------------------------------------------------------------------------------------
    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self.stall_timeout_s is not None:
            now = time.monotonic()
            for trial in trials:
                if self.is_held(trial):
                    self.last_report[trial.trial_id] = now
                    continue
                started = self.last_report.get(trial.trial_id)
                if (trial.status == Trial.RUNNING and started is not None and trial.trial_id not in self.killed
                        and now - started > self.stall_timeout_s):
                    self._kill(trial, now - started)
        self._settle_suspects()
        self.monitor.tick()

    def _kill(self, trial: Trial, silent_s: float) -> None:
        actor = trial.temporary_state.ray_actor
        if actor is None:
            return
        self.killed.add(trial.trial_id)
        self.monitor.stall_killed(self._number(trial), silent_s)
        ray.kill(actor, no_restart=True)  # Tune sees the actor die and retries or fails the trial
