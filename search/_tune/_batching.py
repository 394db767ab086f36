"""Batched trials (``resources.trials_per_worker: K`` > 1): up to K trials share one worker process, which trains
those of one network shape as one vectorised model (:mod:`trainers.batched`).

Each trial stays a Ray Tune trial of its own — its own reports, checkpoint, ASHA decisions, Optuna tell, MLflow run,
Parquet rows, replay — because it *is* one: a thin Tune trial (no CPU or GPU of its own, a nominal
:data:`SEAT_MEMORY`) that sends each epoch's request to a :class:`BatchWorker` actor and reports what comes back.
The worker holds the experiment's per-worker resources (``resources.cpus/gpus/custom``) and the data (moved to its
device once, not per trial or epoch). It trains one *round* at a time: every member waiting for an epoch, each at
its own epoch index, grouped by shape (members of different shapes are never vectorised together).

When does a round start? When every seated member is waiting (none of them new: trials start together, and the
first to arrive should not train alone), or ``capacity`` are, or :data:`GATHER_S` after the first request of the
round — so a member that is slow to come back (its report is still with the driver, it hangs,
its process died) delays the others by at most that window, never holds them. A member's results do not depend on
which companions share its round (``trainers.batched``: bit for bit on CPU), so when rounds start changes how much is
vectorised, never what a trial computes. A member leaves when its trial ends for any reason (finished, stopped by
ASHA — Tune ends a stopped trial's thread with ``SystemExit`` in its next report —, failed); a seat that stops asking
without leaving is dropped after it missed :data:`STALE_ROUNDS` rounds, and taken again if it comes back.

Energy (:mod:`trainers.energy`): the worker's meter measures each round (from the end of the previous one), and the
round's joules are split equally among its members; each member's epoch metrics carry its part (``epoch_energy_j``)
and the meter's ``energy_source``, which its thin trial reports.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import ray

from trainers import SearchData
from trainers.energy import DEFAULT_CPU_WATTS_PER_CORE

GATHER_S = 0.2  # the longest a round waits for seated members that have not asked yet
STALE_ROUNDS = 3  # rounds a seated member may miss before its seat is given up
SEAT_MEMORY = 16 * 2**20  # what a batched trial's own Tune actor reserves (Ray needs a non-empty request)
START_S = 120.0  # the longest start_workers waits for a worker to start (imports, CUDA); it goes on with those up
_RESTARTS = 3  # times Ray restarts a worker that died (a lost node); an in-flight epoch fails, Tune retries it


@dataclass
class _Seat:
    recipe: str
    spec: Any  # the member's TrialSpec (the same object every epoch: trainers.batched reuses its live model then)
    epoch: int = 0  # the last epoch trained here
    checkpoint: bytes | None = None  # what that epoch returned, as sent
    state: Any = None  # and decoded
    missed: int = 0


@dataclass
class _Request:
    key: str
    recipe: str
    spec: Any
    epoch: int
    state: Any
    new: bool  # the member's first request here: trials start together, so others may be about to join
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Any = None


class BatchWorker:
    """One worker process of a batched experiment (a Ray actor; see the module doc). Threaded: each member's
    request blocks in its own thread until its round has run; the thread that starts a round runs it."""

    def __init__(self, data: SearchData, capacity: int, want_gpu: bool, threads: int, deterministic: bool, *,
                 gpus: float = 0.0, cpus: float = 1.0,
                 energy_watts_per_core: float = DEFAULT_CPU_WATTS_PER_CORE) -> None:
        from trainers.batched import BatchTrainer
        from trainers.energy import EnergyMeter
        from trainers.hardware import device_name, pick_device

        self._data = data
        self._capacity = capacity
        self._device = pick_device(want_gpu)
        self._device_name = device_name(self._device)
        # the worker's resources (gpus, cpus) are what it is charged for; its members share each round's part
        self._meter = EnergyMeter.for_resources(self._device, gpus=gpus, cpus=cpus,
                                                cpu_watts_per_core=energy_watts_per_core)
        self._threads = threads
        self._deterministic = deterministic
        self._trainer = BatchTrainer()
        self._lock = threading.Condition()
        self._seats: dict[str, _Seat] = {}
        self._reserved: dict[str, str] = {}  # seats taken by sit() whose member has not asked yet: key -> shape
        # where its members train (their records say this node, not their thin trials'); outside Ray (tests): none
        self._node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
        self._waiting: list[_Request] = []
        self._first_wait = 0.0
        self._running = False
        self.rounds = 0
        self.members_trained = 0

    def seats(self) -> dict[str, int]:
        """Seated (or reserved) members per shape key (where the next trial of a shape should sit)."""
        with self._lock:
            return self._counts()

    def _counts(self) -> dict[str, int]:
        from trainers.batched import shape_key

        counts: dict[str, int] = {}
        shapes = [shape_key(seat.recipe, seat.spec.params) or "" for key, seat in self._seats.items()
                  if key not in self._reserved]
        for shape in shapes + list(self._reserved.values()):
            counts[shape] = counts.get(shape, 0) + 1
        return counts

    def sit(self, key: str, shape: str, force: bool = False) -> bool:
        """Take a seat for member ``key`` if one is free (or anyway, with ``force``): reserved at once, so trials
        choosing a worker at the same moment do not all sit at the same one."""
        with self._lock:
            if key in self._seats or key in self._reserved:
                return True
            if not force and sum(self._counts().values()) >= self._capacity:
                return False
            self._reserved[key] = shape
            return True

    def stats(self) -> dict[str, float]:
        with self._lock:
            return {"rounds": self.rounds, "members_trained": self.members_trained, "seated": len(self._seats)}

    def leave(self, key: str) -> None:
        with self._lock:
            self._seats.pop(key, None)
            self._reserved.pop(key, None)
            self._lock.notify_all()  # a round waiting for this member can start

    def epoch(self, key: str, recipe: str, params: Mapping[str, Any], epochs: int, seed: int, trial_number: int,
              epoch: int, checkpoint: bytes | None) -> tuple[dict[str, float | str], bytes, str, str]:
        """Train member ``key`` for ``epoch`` (from ``checkpoint``, the bytes of epoch - 1's state, or ``None`` at
        epoch 1) in the next round; returns its metrics (with its part of the round's energy), its new checkpoint
        bytes, the device's name and the node's id (where it trained), or raises its error."""
        from trainers import TrialSpec, state_from_bytes

        with self._lock:
            self._reserved.pop(key, None)
            seat = self._seats.get(key)
            new = seat is None or seat.spec.params != params or seat.spec.epochs != epochs
            if new:
                seat = self._seats[key] = _Seat(recipe, TrialSpec(
                    params=dict(params), data=self._data, epochs=epochs, seed=seed, device=self._device,
                    threads=self._threads, deterministic=self._deterministic, trial_number=trial_number))
            if checkpoint is None:
                state = None
            elif seat.epoch == epoch - 1 and seat.checkpoint == checkpoint:
                state = seat.state  # what this worker returned last: trainers.batched continues its live model
            else:
                saved = state_from_bytes(checkpoint)
                if saved["epoch"] != epoch - 1:
                    raise ValueError(f"{key}: checkpoint of epoch {saved['epoch']} for epoch {epoch}")
                state = saved["state"]
            seat.missed = 0
            request = _Request(key, recipe, seat.spec, epoch, state, new)
            if not self._waiting:
                self._first_wait = time.monotonic()
            self._waiting.append(request)
            self._lock.notify_all()
            while not request.done.is_set():
                batch = self._take_round()
                if batch:
                    break
                self._lock.wait(self._time_left())
            else:
                return self._result(request)
        self._run_round(batch)
        return self._result(request)

    # -- rounds (called with the lock held, except _run_round) ------------------------------------------------------
    def _time_left(self) -> float | None:
        if self._running or not self._waiting:
            return None  # woken when the running round ends, or a request arrives
        return max(0.0, self._first_wait + GATHER_S - time.monotonic())

    def _take_round(self) -> list[_Request]:
        """The requests of the next round, if it should start now (and nobody else runs one)."""
        if self._running or not self._waiting:
            return []
        waiting = {r.key for r in self._waiting}
        # every seated member asked — unless one just joined: then the others starting with it get the window
        everyone = all(key in waiting for key in self._seats) and not any(r.new for r in self._waiting)
        if not (everyone or len(waiting) >= self._capacity or time.monotonic() >= self._first_wait + GATHER_S):
            return []
        for key, seat in list(self._seats.items()):
            if key not in waiting:
                seat.missed += 1
                if seat.missed >= STALE_ROUNDS:  # stopped asking without leaving: its seat is given up
                    del self._seats[key]
        batch, self._waiting, self._running = self._waiting, [], True
        return batch

    def _run_round(self, batch: list[_Request]) -> None:
        from trainers.batched import Member, shape_key

        finished: list[tuple[_Request, Any]] = []
        try:
            outcomes = self._trainer.train_epoch(
                [Member(r.key, r.recipe, r.spec, r.epoch, r.state) for r in batch])
            energy = self._meter.lap() / len(batch)  # the round's joules, split equally among its members
            # how many trials each member's epoch was vectorised with (trainers.batched groups a round by shape)
            shapes = [shape_key(r.recipe, r.spec.params) for r in batch]
            finished = [(request, self._encode(request, outcome, shapes.count(shape), energy))
                        for request, outcome, shape in zip(batch, outcomes, shapes)]
        except BaseException as err:  # noqa: BLE001 - every member of the round gets the error, none waits forever
            finished = [(request, err) for request in batch]
            self._meter.lap()  # a failed round's energy is nobody's epoch: the next round's window starts here
        finally:
            with self._lock:
                for request, outcome in finished:
                    request.outcome = outcome
                    request.done.set()
                self.rounds += 1
                self.members_trained += len(batch)
                self._running = False
                if self._waiting:
                    self._first_wait = time.monotonic()
                self._lock.notify_all()

    def _encode(self, request: _Request, outcome: Any, members: int, energy_j: float) -> Any:
        from trainers import state_to_bytes

        if isinstance(outcome, BaseException):
            return outcome
        metrics, state = outcome
        checkpoint = state_to_bytes({"epoch": request.epoch, "state": state})
        seat = self._seats.get(request.key)
        if seat is not None and seat.spec is request.spec:
            seat.epoch, seat.checkpoint, seat.state = request.epoch, checkpoint, state
        return ({**metrics, "batch_members": float(members), "epoch_energy_j": energy_j,
                 "energy_source": self._meter.source}, checkpoint, self._device_name, self._node_id)

    @staticmethod
    def _result(request: _Request) -> tuple[dict[str, float | str], bytes, str, str]:
        if isinstance(request.outcome, BaseException):
            raise copy.copy(request.outcome)  # each member's thread raises its own copy (its own traceback)
        return request.outcome


def start_workers(count: int, capacity: int, data: SearchData, resources: Mapping[str, float], threads: int,
                  deterministic: bool, energy_watts_per_core: float = DEFAULT_CPU_WATTS_PER_CORE) -> list[Any]:
    """``count`` :class:`BatchWorker` actors, each holding ``resources`` (Ray names: ``CPU``, ``GPU``, custom).
    ``energy_watts_per_core``: the energy estimate's power per busy core (:mod:`trainers.energy`)."""
    gpus = float(resources.get("GPU", 0))
    custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU") and v}
    actor = ray.remote(BatchWorker).options(
        num_cpus=resources.get("CPU", 1), num_gpus=gpus, resources=custom or None,
        max_concurrency=capacity + 8,  # a thread per member's request, plus seats()/leave()
        # lost with its node: started again where resources allow; its members resend their checkpoints
        max_restarts=_RESTARTS)
    data_ref = ray.put(data)
    workers = [actor.remote(data_ref, capacity, gpus > 0, threads, deterministic, gpus=gpus,
                            cpus=float(resources.get("CPU", 1)), energy_watts_per_core=energy_watts_per_core)
               for _ in range(count)]
    # a worker the cluster cannot start now (its resources are held by others) would make every trial wait for it
    started = [worker.stats.remote() for worker in workers]
    ready, _ = ray.wait(started, num_returns=len(started), timeout=START_S)
    live = [worker for worker, ref in zip(workers, started) if ref in ready]
    for worker, ref in zip(workers, started):
        if ref not in ready:
            ray.kill(worker)
    if not live:
        raise RuntimeError(f"none of {count} batched workers asking {dict(resources)} started within {START_S:g} s: "
                           "the cluster's resources are held by others")
    return live
