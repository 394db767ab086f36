"""Running an experiment's trials on a simulated clock: the real searcher and scheduler, no Ray cluster, no training.

:func:`simulate_trials` stands in for :func:`search._tune._run.run_trials`. It drives the very objects a real run
gives Ray Tune — :class:`~search._tune._searcher.OptunaSearcher` over the experiment's Optuna sampler, and
:class:`~search._tune._scheduling.ObservedScheduler` around Ray's own ASHA, HyperBand or median-stopping class — with
the calls Tune's controller makes, in Tune's order (``TuneController._process_trial_result``, ``stop_trial``,
the recovery path), and replays learning curves from a table (:mod:`search.simulation`) instead of training:
each epoch ends after the table's epoch time (times a straggler's factor) on a simulated clock. ``N`` workers each
run one trial at a time. Everything goes to the driver's :class:`~search.monitor.Monitor`, as in a real run.

Schedulers see a controller (:class:`SimController`) with Tune's public controller methods (``get_trials``,
``get_live_trials``, ``stop_trial``) and, for held trials, ``_schedule_trial_train`` (what
:func:`~search._tune._ray_internals.resume_training` calls). ``get_trials`` lists the live trials only: every
scheduler choice looks at PENDING and PAUSED trials, and a list of all ended trials would make each choice cost
time in proportion to the experiment's length.

Events at the same simulated instant are handled in the order they were scheduled; workers are taken lowest
index first: the same seed gives the same simulation.
"""

from __future__ import annotations

import heapq
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ray.tune.schedulers import HyperBandScheduler, TrialScheduler
from ray.tune.search import Searcher

from search._tune._common import TIME_ATTR
from search._tune._scheduling import ObservedScheduler, make_scheduler
from search._tune._searcher import OptunaSearcher
from search._tune._slots import TrialSlots
from search.config import ExperimentConfig
from search.faults import FaultPlan
from search.seeds import derive_seed
from search.simulation import Curve, CurveTable, SimulationSettings, TableError

PENDING, RUNNING, PAUSED, TERMINATED, ERROR = "PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR"
_EPOCH, _FAIL, _STALL, _LOST = "epoch", "fail", "stall", "lost"


class SimTrial:
    """What Ray's schedulers read of a Tune ``Trial``: ``trial_id``, ``config``, ``status``, ``is_saving``."""

    __slots__ = ("trial_id", "config", "status", "is_saving", "number", "curve", "epoch", "attempt", "worker",
                 "token", "last_result", "since", "epochs")

    def __init__(self, trial_id: str, config: dict[str, Any], curve: Curve) -> None:
        self.trial_id = trial_id
        self.config = config
        self.status = PENDING
        self.is_saving = False
        self.number = int(config["trial_number"])
        self.epochs = int(config["epochs"])
        self.curve = curve
        self.epoch = 0  # epochs trained (its checkpoint)
        self.attempt = 1
        self.worker: int | None = None
        self.token = 0  # bumped at every start and stop: events of an earlier run of the trial are stale
        self.last_result: dict[str, Any] = {}
        self.since = 0.0  # simulated time of its last sign of life (start or report): the stall watchdog's clock

    def __repr__(self) -> str:
        return f"SimTrial({self.number}, {self.status})"


class SimController:
    """The face of Tune's controller that Ray's schedulers (and ours) use."""

    def __init__(self, sim: "Simulation") -> None:
        self._sim = sim

    def get_trials(self) -> list[SimTrial]:
        return list(self._sim.live.values())

    def get_live_trials(self) -> list[SimTrial]:
        return list(self._sim.live.values())

    def stop_trial(self, trial: SimTrial) -> None:
        self._sim.stop_trial(trial)

    def _schedule_trial_train(self, trial: SimTrial) -> None:  # Tune's name: a held trial trains on
        self._sim.train_on(trial)


@dataclass
class Simulation:
    """One simulated run of ``trials`` trials on ``settings.workers`` workers."""

    cfg: ExperimentConfig
    study: Any
    monitor: Any
    trials: int
    table: CurveTable
    settings: SimulationSettings
    latencies: list[float] | None = None  # seconds each decision point took, when measured
    now: float = 0.0
    live: dict[str, SimTrial] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cfg = self.cfg
        workers = self.settings.workers
        inner = make_scheduler(cfg.scheduler)
        # HyperBand pauses trials between its halvings: the workers, not a trial count, limit it (as in a real run,
        # where it takes no max_concurrent)
        self.slots = TrialSlots(None if isinstance(inner, HyperBandScheduler) else workers)
        self.searcher = OptunaSearcher(self.study, cfg, self.monitor.events, self.trials, slots=self.slots)
        self.scheduler = ObservedScheduler(inner, cfg, self.monitor.events, strict=cfg.reproducible.mode == "strict",
                                           park=cfg.scheduler.promotion == "ordered", slots=self.slots)
        metric, mode = cfg.metric.name, cfg.metric.mode
        self.scheduler.set_search_properties(metric, mode)
        self.searcher.set_search_properties(metric, mode, {})
        self.controller = SimController(self)
        self._events: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._free: list[int] = list(range(workers))  # a heap: the lowest free worker first
        self._speed = [1.0] * workers  # how many times slower each worker trains (slow nodes)
        for index, (fraction, factor) in enumerate(self.settings.stragglers.slow_nodes):
            for worker in _chosen(workers, fraction, derive_seed(cfg.seed, f"sim-slow-nodes{index}")):
                self._speed[worker] *= factor
        self._dead: set[int] = set()
        for index, (fraction, at) in enumerate(self.settings.stragglers.lost):
            self._push(at, _LOST, (fraction, derive_seed(cfg.seed, f"sim-lost{index}")))
        self._created = 0
        self._finished = False  # the searcher said it will suggest no more
        self._failed_fast = False
        self.makespan = 0.0

    # -- the clock ----------------------------------------------------------------------------------------------
    def _push(self, at: float, kind: str, payload: Any) -> None:
        heapq.heappush(self._events, (at, self._seq, kind, payload))
        self._seq += 1

    def clock(self) -> float:
        return self.now

    def run(self) -> set[int]:
        """Simulate until every trial has ended (or the time budget is spent); returns the trial numbers run."""
        budget = self.cfg.budget.time_budget_s
        measure = self.latencies is not None
        self._fill()
        while self._events and not self._failed_fast:
            at, _, kind, payload = heapq.heappop(self._events)
            if budget is not None and at > budget:
                self.now = float(budget)  # Tune ends the experiment there, trials running as they are
                break
            self.now = at
            started = time.perf_counter() if measure else 0.0
            getattr(self, f"_on_{kind}")(payload)
            self._fill()
            if measure:
                self.latencies.append(time.perf_counter() - started)
        self.makespan = self.now
        self.searcher.close_open_trials()
        return {t.number for t in self.live.values()} | set(self.monitor.records.trials)

    # -- starting trials ---------------------------------------------------------------------------------------------
    def _fill(self) -> None:
        """Give every free worker a trial: the scheduler's choice among pending and paused ones, else a new one."""
        while self._free:
            trial = self.scheduler.choose_trial_to_run(self.controller)
            if trial is None:
                trial = self._new_trial()
                if trial is None:
                    return
                trial = self.scheduler.choose_trial_to_run(self.controller)
                if trial is None:
                    return
            self._start(trial, heapq.heappop(self._free))

    def _new_trial(self) -> SimTrial | None:
        if self._finished or self._created >= self.trials:
            return None
        trial_id = f"sim_{self._created:06d}"
        config = self.searcher.suggest(trial_id)
        if config is None:
            return None  # waits (a strict generation, or the concurrency limit): asked again after the next event
        if config == Searcher.FINISHED:
            self._finished = True
            return None
        self._created += 1
        trial = SimTrial(trial_id, config, self.table.lookup(config["params"], int(config["epochs"]),
                                                             int(config["seed"]), self.settings.lookup))
        self.live[trial_id] = trial
        self.scheduler.on_trial_add(self.controller, trial)
        return trial

    def _start(self, trial: SimTrial, worker: int) -> None:
        trial.status, trial.worker, trial.since = RUNNING, worker, self.now
        trial.token += 1
        trial.config["attempt"] = trial.attempt
        self.monitor.trial_started(trial.number, trial.trial_id, int(trial.config["seed"]),
                                   dict(trial.config["params"]), trial.epochs, attempt=trial.attempt)
        self._next_epoch(trial)

    def _plan(self, trial: SimTrial) -> FaultPlan:
        return FaultPlan.for_trial(self.cfg.faults, trial.number, trial.attempt, self.cfg.seed, lambda: set())

    def _next_epoch(self, trial: SimTrial) -> None:
        """Schedule the end of ``trial``'s next epoch — or, for a drill, its failure or hang."""
        epoch = trial.epoch + 1
        trial.curve.check_reaches(epoch, trial.number, self.table.source)
        computing = trial.curve.seconds[epoch - 1] * self._speed[trial.worker]
        took, fails, hangs = computing, False, False
        for rule in self._plan(trial).rules:
            if rule.slow is not None:
                took *= rule.slow
            elif rule.raise_at_epoch == epoch:
                fails = True
            elif rule.hang_at_epoch == epoch:
                hangs = True
        stall = self.cfg.tolerance.stall_timeout_s
        if stall is not None and (hangs or self.now + took - trial.since > stall):
            # the watchdog kills a trial silent for stall_timeout_s (a hung one, or an epoch slower than that)
            self._push(trial.since + stall, _STALL, (trial, trial.token))
        elif hangs:
            raise TableError(f"trial {trial.number} hangs at epoch {epoch} and tolerance.stall_timeout_s is null: "
                             f"nothing would ever end it (set a stall timeout to simulate hung trials)")
        elif fails:
            self._push(self.now + took, _FAIL, (trial, trial.token, epoch))
        else:
            self._push(self.now + took, _EPOCH, (trial, trial.token, took, computing))

    # -- events -------------------------------------------------------------------------------------------------------
    def _on_epoch(self, payload: tuple) -> None:
        trial, token, took, computing = payload
        if token != trial.token or trial.status != RUNNING:
            return
        trial.epoch += 1
        trial.since = self.now
        epoch = trial.epoch
        metrics = {**trial.curve.metrics[epoch - 1], "epoch_wall_s": took, "epoch_time_s": computing}
        result = {**metrics, TIME_ATTR: epoch, "epochs": trial.epochs, "trial_id": trial.trial_id}
        trial.last_result = result
        # Tune's order (TuneController._process_trial_result): the scheduler decides; the searcher hears of the
        # result unless it stopped the trial; then the callbacks (our monitor)
        decision = self.scheduler.on_trial_result(self.controller, trial, result)
        if decision != TrialScheduler.STOP:
            self.searcher.on_trial_result(trial.trial_id, result)
        self.monitor.trial_result(trial.number, epoch, metrics, f"sim-worker-{trial.worker}", "simulated")
        if trial.status != RUNNING:
            return  # the scheduler stopped it while deciding (HyperBand's halving stops the current trial too)
        if decision == TrialScheduler.STOP or epoch >= trial.epochs:
            self._complete(trial, result)
        elif decision == TrialScheduler.PAUSE:
            self._release(trial, PAUSED)
        elif decision == TrialScheduler.CONTINUE:
            self._next_epoch(trial)
        # NOOP: held at a rung, keeping its worker, until the scheduler calls train_on

    def _complete(self, trial: SimTrial, result: dict) -> None:
        self._release(trial, TERMINATED)
        self.scheduler.on_trial_complete(self.controller, trial, result)
        self.searcher.on_trial_complete(trial.trial_id, result)
        self.monitor.trial_ended(trial.number)

    def _release(self, trial: SimTrial, status: str) -> None:
        trial.status = status
        trial.token += 1
        if trial.worker is not None and trial.worker not in self._dead:
            heapq.heappush(self._free, trial.worker)
        trial.worker = None
        if status in (TERMINATED, ERROR):
            self.live.pop(trial.trial_id, None)

    def _on_fail(self, payload: tuple) -> None:
        trial, token, epoch = payload
        if token == trial.token and trial.status == RUNNING:
            self._failed(trial, "FAILED", f"injected fault: raise at epoch {epoch} (attempt {trial.attempt})")

    def _on_stall(self, payload: tuple) -> None:
        trial, token = payload
        if token == trial.token and trial.status == RUNNING:
            silent = self.now - trial.since
            self.monitor.stall_killed(trial.number, silent)
            self._failed(trial, "STALLED", f"stalled: no report for {silent:.1f} simulated seconds")

    def _on_lost(self, payload: tuple) -> None:
        fraction, seed = payload
        alive = [w for w in range(self.settings.workers) if w not in self._dead]
        lost = {alive[i] for i in _chosen(len(alive), fraction, seed)}
        self._dead |= lost
        self._free = [w for w in self._free if w not in lost]
        heapq.heapify(self._free)
        for trial in [t for t in self.live.values() if t.status == RUNNING and t.worker in lost]:
            self._failed(trial, "PREEMPTED", f"node sim-worker-{trial.worker} was lost (simulated)")
        if len(self._dead) == self.settings.workers:
            raise TableError(f"--straggler lost: every simulated worker was lost by second {self.now:g}; nothing "
                             f"could finish the experiment")

    def _failed(self, trial: SimTrial, state: str, error: str) -> None:
        """An attempt ended badly: retried from its checkpoint while ``max_retries`` allows (Tune's recovery:
        the trial goes back to PENDING, its scheduler and searcher are not told), else the trial ends FAILED."""
        tolerance = self.cfg.tolerance
        self.monitor.attempt_failed(trial.number, trial.attempt, state, error)
        retries = 0 if tolerance.fail_fast else tolerance.max_retries
        if trial.attempt <= retries:
            self._release(trial, PENDING)
            trial.attempt += 1
            return
        self._release(trial, ERROR)
        self.scheduler.on_trial_error(self.controller, trial)
        self.searcher.on_trial_complete(trial.trial_id, error=True)
        self.monitor.trial_ended(trial.number, "FAILED", error=error)
        self._failed_fast = tolerance.fail_fast

    # -- what schedulers ask of the controller -----------------------------------------------------------------------
    def stop_trial(self, trial: SimTrial) -> None:
        """Tune's ``stop_trial``: a pending or paused trial is removed from the scheduler, a running one completed."""
        if trial.status in (TERMINATED, ERROR):
            return
        if trial.status in (PENDING, PAUSED):
            self._release(trial, TERMINATED)
            self.scheduler.on_trial_remove(self.controller, trial)
            self.searcher.on_trial_complete(trial.trial_id)
            self.monitor.trial_ended(trial.number)
        else:
            self._complete(trial, trial.last_result)

    def train_on(self, trial: SimTrial) -> None:
        """A held trial's turn has come and it was promoted: it trains its next epoch (on the worker it kept)."""
        if trial.status == RUNNING:
            self._next_epoch(trial)


def _chosen(count: int, fraction: float, seed: int) -> list[int]:
    """A seeded choice of ``round(fraction × count)`` (at least one) of ``range(count)``."""
    if count == 0:
        return []
    k = min(count, max(1, round(fraction * count)))
    return sorted(random.Random(seed).sample(range(count), k))


def simulate_trials(cfg: ExperimentConfig, study: Any, monitor: Any, trials: int, table: CurveTable,
                    settings: SimulationSettings, latencies: list[float] | None = None,
                    on_clock: Callable[[Simulation], None] | None = None) -> Simulation:
    """Simulate ``trials`` trials of ``cfg``; every event goes to ``monitor``. ``latencies``: appended with the
    seconds each decision point (an event and the asks it frees) took. ``on_clock`` gets the simulation before it
    runs (to read its clock)."""
    sim = Simulation(cfg, study, monitor, trials, table, settings, latencies)
    if on_clock is not None:
        on_clock(sim)
    sim.run()
    return sim
