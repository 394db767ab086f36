"""The function trainable: one trial inside a Ray worker, running a trainers recipe."""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import ray
from ray import tune

from search.config import SEARCH_PHASE, FaultRule
from search.constraints import Constraint, violations
from search.faults import FaultPlan
from search.redaction import redacted_exception, remember_secrets
from trainers import SearchData, TrialSpec, resolve_trainer, state_from_bytes, state_to_bytes
from trainers.energy import DEFAULT_CPU_WATTS_PER_CORE, EnergyMeter
from trainers.hardware import device_name, pick_device

_CHECKPOINT_FILE = "state.pt"
_EPOCH_FILE = "epoch"  # beside it: the epoch, readable without torch (a batched trial's thin client has none)
_ENERGY_FILE = "energy"  # and the trial's joules up to that epoch, along its checkpoint chain (likewise)


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of an experiment shares (travels with the trainable, not in each config).

    ``secrets``: every secret value the driver knows (:func:`search.redaction.known_secrets`), so a worker on any
    node masks them in a trial's exception before Ray sees it. Left out of the repr: never logged.

    ``cpus`` (a trial's, or a batched worker's, ``resources.cpus``) and ``gpus`` set the part of a measured device a
    trial is charged for its energy; ``energy_watts_per_core`` is the estimate's power per busy core
    (:mod:`trainers.energy`).
    """

    trainer: str
    deterministic: bool
    threads: int
    gpus: float
    constraints: tuple[Constraint, ...] = ()
    faults: tuple[FaultRule, ...] = ()
    experiment_seed: int = 0
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # batched trials (resources.trials_per_worker > 1): the BatchWorker actors that train them, K seats each
    workers: tuple[Any, ...] = field(default=(), repr=False)
    trials_per_worker: int = 1
    cpus: float = 1.0
    energy_watts_per_core: float = DEFAULT_CPU_WATTS_PER_CORE


class _Infeasible(Exception):
    """Raised after the report that shows a constraint broken: the trial stops there."""


class _TuneReporter:
    """A trainers ``Reporter`` on Ray Tune: metrics via ``tune.report``, state as a checkpoint per epoch.

    Every report carries the epoch's energy: ``epoch_energy_j`` (a lap of ``meter``: since the previous report, or
    the attempt's start), ``energy_j`` (the trial's joules up to this epoch along its checkpoint chain: a restart
    from a checkpoint goes on from the joules saved with it) and ``energy_source``. Without a meter (a batched
    trial's thin client: its worker measures) the first two come in the metrics.
    """

    def __init__(self, epochs: int, device: str, attempt: int, constraints: tuple[Constraint, ...] = (),
                 faults: FaultPlan | None = None, meter: EnergyMeter | None = None) -> None:
        self.epochs = epochs
        self.device = device
        self.attempt = attempt
        self.constraints = constraints
        self.faults = faults
        self.meter = meter
        self.node_id = ray.get_runtime_context().get_node_id()
        self._created = time.perf_counter()
        self._last: float | None = None  # when the previous report of this attempt returned
        self._energy_j = 0.0  # up to the last report (or the checkpoint restored); NaN once any part is unknown
        self._chain_source: str | None = None  # the source of the joules restored with a checkpoint

    def report(self, epoch: int, metrics: Mapping[str, float], state: Mapping[str, Any] | bytes | None = None) -> None:
        """One epoch's metrics, and the state to resume from (or its checkpoint bytes, as a batched worker sends)."""
        arrived = time.perf_counter()
        if self._last is None:
            # An attempt's first epoch is timed from the epoch's start (the recipe measures it), not from the
            # set-up before it: a fresh worker's imports, data and checkpoint restore would make every first
            # trial on a worker, and every resumed one, look like a straggler.
            self._last = arrived - metrics.get("epoch_time_s", arrived - self._created)
        if self.faults is not None and self.faults.rules:
            # "k times slower" means k times the epoch's own training time, not the set-up before it
            self.faults.before_report(epoch, metrics.get("epoch_time_s", arrived - self._last))
        now = time.perf_counter()
        # Wall time since the previous report as this worker saw it: what a slow node or a straggler shows.
        wall, self._last = now - self._last, now
        if self.meter is not None:
            epoch_energy, source = self.meter.lap(), self.meter.source
        else:  # a batched member: its worker measured the round and sent this member's part
            epoch_energy = float(metrics.get("epoch_energy_j", math.nan))
            source = str(metrics.get("energy_source", "estimate"))
        self._energy_j += epoch_energy  # an unknown epoch leaves the total unknown, not smaller
        if self._chain_source is not None and self._chain_source != source:
            # restarted on a node with another source: the chain's joules are not one measurement any more
            source = "mixed"
        self._chain_source = source
        # numbers, and strings such as the genotype a one-shot search derived so far
        result = {**{k: v if isinstance(v, str) else float(v) for k, v in metrics.items()}, "epoch_wall_s": wall, "epoch": epoch,
                  "epochs": self.epochs, "device": self.device, "node_id": self.node_id, "attempt": self.attempt,
                  "epoch_energy_j": epoch_energy, "energy_j": self._energy_j, "energy_source": source}
        if state is None:
            tune.report(result)
        else:
            checkpoint = state if isinstance(state, bytes) else state_to_bytes({"epoch": epoch, "state": state})
            with tempfile.TemporaryDirectory(prefix="hypernas-ckpt-") as folder:
                Path(folder, _CHECKPOINT_FILE).write_bytes(checkpoint)
                Path(folder, _EPOCH_FILE).write_text(str(epoch))
                Path(folder, _ENERGY_FILE).write_text(f"{self._energy_j!r} {source}")
                tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))
        if self.constraints and violations(self.constraints, result):  # the energy keys included
            raise _Infeasible()  # no point training a model that can never be selected

    def restore(self) -> tuple[int, Mapping[str, Any]] | None:
        saved = self.restore_bytes()
        if saved is None:
            return None
        decoded = state_from_bytes(saved[1])
        return decoded["epoch"], decoded["state"]

    def restore_bytes(self) -> tuple[int, bytes] | None:
        """The last checkpoint as saved: its epoch and the bytes of ``{"epoch", "state"}`` (no torch needed)."""
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            data = Path(folder, _CHECKPOINT_FILE).read_bytes()
            epoch_file = Path(folder, _EPOCH_FILE)
            epoch = int(epoch_file.read_text()) if epoch_file.is_file() else state_from_bytes(data)["epoch"]
            energy_file = Path(folder, _ENERGY_FILE)
            # a checkpoint saved before energy was measured: what the trial used up to it is unknown
            joules, _, source = (energy_file.read_text() if energy_file.is_file() else "nan").partition(" ")
            self._energy_j, self._chain_source = float(joules), source or None
        return epoch, data


def trial_entry(config: dict[str, Any], *, data: SearchData, settings: TrialSettings) -> None:
    """One trial, inside a Ray worker: build the TrialSpec and run the recipe.

    An exception leaves masked (:func:`search.redaction.redacted_exception`: same type, secrets masked in its
    message and traceback), raised outside the ``except`` block: Ray's console, its ``error.txt``/``error.pkl``
    and our records only ever see the masked copy, never the original or its chained context.
    """
    remember_secrets(settings.secrets)
    try:
        _train(config, data, settings)
        return
    except _Infeasible:
        return  # ends like a trial stopped early; the driver records it as infeasible
    except Exception as err:  # noqa: BLE001 - every trial error leaves this process masked
        failure = redacted_exception(err)
    raise failure from None


def _train(config: dict[str, Any], data: SearchData, settings: TrialSettings) -> None:
    # a batched trial's own process trains nothing (its worker has the device and measures its energy): no torch
    device = "cpu" if settings.workers else pick_device(settings.gpus > 0)
    meter = None if settings.workers else EnergyMeter.for_resources(
        device, gpus=settings.gpus, cpus=settings.cpus, cpu_watts_per_core=settings.energy_watts_per_core)
    spec = TrialSpec(
        params={k: v for k, v in config["params"].items() if k != "epochs"},
        data=data,
        epochs=config["epochs"],
        seed=config["seed"],
        device=device,
        threads=settings.threads,
        deterministic=settings.deterministic,
        trial_number=config["trial_number"],
    )
    attempt = int(config.get("attempt", 1))  # the driver counts restarts (stall, exception, lost node)
    faults = FaultPlan.for_trial(settings.faults, spec.trial_number, attempt, settings.experiment_seed,
                                 _node_resources) if settings.faults else None
    # constraints bound the models a search selects from; a one-shot supernet search is not one of them
    constraints = () if config.get("phase") == SEARCH_PHASE else settings.constraints
    # a one-shot experiment's supernet searches run the one-shot trainer (config.ExperimentConfig.trainer_for)
    trainer = config.get("trainer") or settings.trainer
    if settings.workers:
        reporter = _TuneReporter(spec.epochs, "", attempt, constraints, faults)  # the worker says which device
        _train_batched(trainer, spec, reporter, settings)
        return
    reporter = _TuneReporter(spec.epochs, device_name(device), attempt, constraints, faults, meter)
    try:
        resolve_trainer(trainer).train(spec, reporter)
    finally:  # a reused actor keeps no open window (nor CodeCarbon's power-polling timer) after its trial
        meter.close()


def _train_batched(recipe: str, spec: TrialSpec, reporter: _TuneReporter, settings: TrialSettings) -> None:
    """A batched trial's thin client (``search._tune._batching``): each epoch is trained by a BatchWorker, in a round
    with the other trials seated there; this reports it and keeps its checkpoint, like any trial."""
    key = f"{spec.trial_number}/{reporter.attempt}"
    worker = _choose_worker(settings.workers, settings.trials_per_worker, recipe, spec.params, key)
    epoch, checkpoint = reporter.restore_bytes() or (0, None)
    try:
        for epoch in range(epoch + 1, spec.epochs + 1):
            metrics, checkpoint, reporter.device, reporter.node_id = ray.get(worker.epoch.remote(
                key, recipe, dict(spec.params), spec.epochs, spec.seed, spec.trial_number, epoch, checkpoint))
            reporter.report(epoch, metrics, checkpoint)
    finally:  # finished, stopped (Tune ends a stopped trial with SystemExit in report), failed: the seat is free
        worker.leave.remote(key)


_ASK_WORKERS_S = 30.0


def _choose_worker(workers: tuple[Any, ...], capacity: int, recipe: str, params: Mapping[str, Any], key: str) -> Any:
    """Where a trial sits: a worker with room where trials of its shape already sit (they train as one model), else
    the emptiest. Workers that do not answer (lost with their node, restarting) are passed over."""
    from ray.exceptions import RayError

    from trainers.batched import shape_key

    shape = shape_key(recipe, params) or ""
    asked = [worker.seats.remote() for worker in workers]
    ready, _ = ray.wait(asked, num_returns=len(asked), timeout=_ASK_WORKERS_S)
    ranked = []
    for index, (worker, ref) in enumerate(zip(workers, asked)):
        if ref not in ready:
            continue
        try:
            seats = ray.get(ref)
        except RayError:
            continue
        seated = sum(seats.values())
        # room first, then where its shape sits, then the emptiest; ties spread by the key, not the list order
        ranked.append(((seated < capacity, seats.get(shape, 0) > 0, -seated, hash((key, index)) % 997), worker))
    ranked.sort(key=lambda item: item[0], reverse=True)
    for force in (False, True):  # a seat is reserved atomically; all full (a leave not yet arrived): sit anyway
        for _, worker in ranked:
            try:
                if ray.get(worker.sit.remote(key, shape, force), timeout=_ASK_WORKERS_S):
                    return worker
            except RayError:
                continue
    raise RuntimeError(f"none of the {len(workers)} batched workers answered within {_ASK_WORKERS_S:g} s")


def _node_resources() -> set[str]:
    """Names of the custom resources the node running this trial offers (for node-selected fault drills)."""
    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node.get("NodeID") == node_id:
            return set(node.get("Resources", {}))
    return set()
