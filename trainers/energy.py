"""The energy a trial uses, epoch by epoch, measured with CodeCarbon (``codecarbon``, its counter readers).

Why CodeCarbon and not Zeus: Zeus's per-window API over the hardware counters is the better fit, but every Zeus
release requires ``amdsmi``, whose import raises ``KeyError`` on a machine without ROCm's ``libamd_smi.so`` — and
Ray 2.60 imports ``amdsmi`` while it loads and catches only ``ImportError``, so installing Zeus breaks ``import ray``
on every non-AMD machine. CodeCarbon reads the same counters (NVML's total-energy counter, Intel RAPL through
``/sys/class/powercap``) and its task API (``start_task``/``stop_task``) gives per-window energy.

Sources, chosen once when a meter is made (:func:`energy_source`), in this order — a trial never changes source:

- ``"nvml"``: the trial trains on CUDA and NVML answers for its GPUs (CodeCarbon tracks the GPUs in
  ``CUDA_VISIBLE_DEVICES``: under Ray, the trial's own). Only the GPUs' energy is counted on this source.
- ``"rapl"``: CodeCarbon reads Intel RAPL's CPU package counters (``/sys/class/powercap``, usually root only since
  Linux 5.10): the packages' energy.
- ``"estimate"``: neither counter can be read (no GPU, a container without powercap). Not a measurement: the CPU
  time of the trial's process (``time.process_time()``: all its threads) times a nominal power per core,
  :data:`DEFAULT_CPU_WATTS_PER_CORE` unless configured (``energy.cpu_watts_per_core``). Kept simple and stated
  rather than CodeCarbon's own TDP-table estimate, so that anyone can redo the arithmetic.

A measurement and an estimate are never added up: on the ``nvml`` source the CPU is not counted (CodeCarbon would
only estimate it), and RAM is not counted on any source (no counter measures it).

Attribution (what a trial is charged):

- NVML energy is the whole device's. A trial with a fractional GPU (``resources.gpus = f < 1``) is charged ``f`` of
  the device's energy in its window; a trial with several GPUs is charged the sum over its GPUs. Trials sharing a
  GPU are so charged by what they asked for, not by what they used: the device's idle power is shared too.
- RAPL energy is the whole CPU package's. A trial is charged ``cpus / os.cpu_count()`` of it.
- The estimate counts only the trial's own process, so it is charged in full.
- Batched trials (``resources.trials_per_worker > 1``): the worker measures each round, and the round's energy is
  split equally among the round's members.

An epoch's window runs from the previous report (or the start of the attempt) to this report, so set-up, data
loading and checkpointing are counted too. A reading that fails gives ``NaN`` for that epoch and a warning; it never
fails the trial.

This module imports neither torch nor codecarbon: CodeCarbon loads when a meter first needs a counter.

>>> meter = EnergyMeter("cpu")  # on a machine without counters: meter.source == "estimate"
>>> joules = meter.lap()  # since the meter was made
>>> co2e_g(3.6e6, DEFAULT_GRID_GCO2_PER_KWH)  # one kWh
480.0
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

ENERGY_SOURCES = ("nvml", "rapl", "estimate")

# The estimate's power per busy core: an Intel Xeon Platinum 8380's TDP per core (270 W / 40 cores = 6.75 W), a
# common data-centre CPU. Each CPU-second of the trial's process is charged this many joules.
DEFAULT_CPU_WATTS_PER_CORE = 6.75

# Ember, Global Electricity Review 2024: the world average carbon intensity of electricity generation in 2023,
# 480 gCO2/kWh.
DEFAULT_GRID_GCO2_PER_KWH = 480.0

_J_PER_KWH = 3.6e6


def co2e_g(energy_j: float, grid_gco2_per_kwh: float) -> float:
    """Grams of CO2-equivalent emitted for ``energy_j`` joules of electricity at ``grid_gco2_per_kwh``.

    >>> co2e_g(7.2e6, 500.0)  # two kWh
    1000.0
    """
    return energy_j / _J_PER_KWH * grid_gco2_per_kwh


@functools.lru_cache(maxsize=None)
def _nvml_readable() -> bool:
    """Whether NVML answers in this process (CodeCarbon initialises it on import; probed once per process)."""
    try:
        from codecarbon.core.gpu import is_gpu_details_available
        from codecarbon.core.gpu_nvidia import PYNVML_AVAILABLE

        return bool(PYNVML_AVAILABLE and is_gpu_details_available())
    except Exception as err:  # noqa: BLE001 - no NVML, no driver, no permission: not readable
        logger.debug("energy: no NVML energy counter (%s)", err)
        return False


@functools.lru_cache(maxsize=None)
def _rapl_readable() -> bool:
    """Whether CodeCarbon reads at least one RAPL CPU package here (probed once per process)."""
    try:
        from codecarbon.core.cpu import is_rapl_available

        return bool(is_rapl_available())
    except Exception as err:  # noqa: BLE001 - no powercap, no permission: not readable
        logger.debug("energy: no RAPL counter (%s)", err)
        return False


def energy_source(device: str) -> str:
    """Which of :data:`ENERGY_SOURCES` a meter for ``device`` (``"cpu"``, ``"cuda:0"``) reads on this machine."""
    if device.startswith("cuda") and _nvml_readable():
        return "nvml"
    if _rapl_readable():
        return "rapl"
    return "estimate"


def resource_share(source: str, *, gpus: float, cpus: float) -> float:
    """The part of the measured device a trial holding ``gpus`` GPUs and ``cpus`` CPUs is charged on ``source``.

    >>> resource_share("nvml", gpus=0.25, cpus=2)
    0.25
    >>> resource_share("estimate", gpus=0, cpus=2)
    1.0
    """
    if source == "nvml":
        return gpus if 0 < gpus < 1 else 1.0
    if source == "rapl":
        return min(1.0, cpus / (os.cpu_count() or 1)) if cpus > 0 else 1.0
    return 1.0


@dataclass(frozen=True)
class Reading:
    """The joules of one window: the tracked GPUs' (NVML) and the CPU packages' (RAPL)."""

    gpu_j: float
    cpu_j: float


class _CodeCarbonWindows:
    """CodeCarbon's task API as measurement windows: ``begin_window`` starts a task, ``end_window`` stops it and
    returns its :class:`Reading`. Nothing is written to disk or sent anywhere (offline, no output file)."""

    def __init__(self) -> None:
        from codecarbon import OfflineEmissionsTracker

        # the country only names CodeCarbon's emission factors, which hypernas does not use (energy.grid_gco2_per_kwh)
        self._tracker = OfflineEmissionsTracker(
            country_iso_code="USA", save_to_file=False, log_level="error", tracking_mode="machine",
            allow_multiple_runs=True, measure_power_secs=3600)

    def begin_window(self, key: str, restart: bool = False) -> None:
        self._tracker.start_task(key)

    def end_window(self, key: str) -> Reading:
        data = self._tracker.stop_task(key)
        if data is None:
            raise RuntimeError(f"CodeCarbon had no open task {key!r}")
        return Reading(gpu_j=float(data.gpu_energy) * _J_PER_KWH, cpu_j=float(data.cpu_energy) * _J_PER_KWH)

    def stop(self) -> None:
        """Stop the tracker (its schedulers); nothing is written (no output file)."""
        self._tracker.stop()


def _monitor(source: str) -> Any:
    """The windows reading ``source``'s counters (one CodeCarbon tracker per meter)."""
    return _CodeCarbonWindows()


def _joules(source: str, reading: Reading) -> float:
    return reading.gpu_j if source == "nvml" else reading.cpu_j


class EnergyMeter:
    """Joules used since the previous :meth:`lap`, from the source chosen when the meter is made (see the module doc).

    ``device``: what :func:`trainers.hardware.pick_device` chose. ``share``: the part of the measured device this
    trial is charged (:func:`resource_share`; NVML and RAPL only). ``cpu_watts_per_core``: the estimate's power per
    busy core.

    >>> meter = EnergyMeter.for_resources("cpu", gpus=0, cpus=1)  # a trial holding one CPU
    >>> meter.source in ENERGY_SOURCES
    True
    """

    def __init__(self, device: str = "cpu", share: float = 1.0,
                 cpu_watts_per_core: float = DEFAULT_CPU_WATTS_PER_CORE) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"an energy share must satisfy 0 < share <= 1, got {share}")
        if not cpu_watts_per_core >= 0 or math.isinf(cpu_watts_per_core):
            raise ValueError(f"cpu_watts_per_core must be a finite number >= 0, got {cpu_watts_per_core}")
        self.device = device
        self.share = share
        self.cpu_watts_per_core = cpu_watts_per_core
        self.source = energy_source(device)
        self._key = f"hypernas-energy-{id(self)}"
        self._laps = 0  # each window a key of its own (CodeCarbon keeps every task it was given)
        self._monitor: Any = None
        self._open = False  # a window is open (began without error)
        if self.source != "estimate":
            try:
                self._monitor = _monitor(self.source)
            except Exception as err:  # noqa: BLE001 - the trial trains on; its energy is unknown
                logger.warning("energy: CodeCarbon could not start reading %s (%s): energy is unknown (NaN)",
                               self.source, err)
            self._begin()
        self._cpu_s = time.process_time()

    @classmethod
    def for_resources(cls, device: str, *, gpus: float, cpus: float,
                      cpu_watts_per_core: float = DEFAULT_CPU_WATTS_PER_CORE) -> EnergyMeter:
        """A meter charged the part of the device that ``gpus`` GPUs and ``cpus`` CPUs are (:func:`resource_share`)."""
        return cls(device, resource_share(energy_source(device), gpus=gpus, cpus=cpus), cpu_watts_per_core)

    def lap(self) -> float:
        """Joules since the previous lap (or since the meter was made); ``NaN`` when the counter could not be read."""
        if self.source == "estimate":
            now = time.process_time()
            used, self._cpu_s = now - self._cpu_s, now
            return used * self.cpu_watts_per_core
        joules = math.nan
        if self._open:
            self._open = False
            try:
                joules = _joules(self.source, self._monitor.end_window(self._window())) * self.share
            except Exception as err:  # noqa: BLE001 - a meter never fails a trial
                logger.warning("energy: reading %s failed (%s): this epoch's energy is unknown (NaN)", self.source, err)
        self._begin()
        return joules

    def close(self) -> None:
        """End the open window without reading it and stop the counters' reader (idempotent)."""
        if self._open:
            self._open = False
            try:
                self._monitor.end_window(self._window())
            except Exception as err:  # noqa: BLE001 - closing never fails a trial
                logger.debug("energy: closing the window failed (%s)", err)
        stop = getattr(self._monitor, "stop", None)
        self._monitor = None
        if stop is not None:
            try:
                stop()
            except Exception as err:  # noqa: BLE001
                logger.debug("energy: stopping the reader failed (%s)", err)

    def _window(self) -> str:
        return f"{self._key}-{self._laps}"

    def _begin(self) -> None:
        if self._monitor is None:
            return
        try:
            self._laps += 1
            self._monitor.begin_window(self._window(), restart=True)
            self._open = True
        except Exception as err:  # noqa: BLE001 - the next lap is NaN; the trial trains on
            logger.warning("energy: reading %s failed (%s): the next epoch's energy is unknown (NaN)", self.source,
                           err)
