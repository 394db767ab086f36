"""Energy per epoch (``trainers.energy``, measured with CodeCarbon) and the keys every trial reports with it.

This machine has neither counter CodeCarbon reads (no NVIDIA GPU, no ``/sys/class/powercap``), so its meters estimate
from the process's CPU time: those tests are real. Choosing NVML or RAPL and charging a trial its share of the device
are tested with a small stand-in for the meter's CodeCarbon windows (``begin_window``/``end_window`` returning a
``Reading``), because no counter can be read here. The end-to-end tests run real experiments on a local Ray.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from trainers import energy
from trainers.energy import (DEFAULT_CPU_WATTS_PER_CORE, DEFAULT_GRID_GCO2_PER_KWH, ENERGY_SOURCES, EnergyMeter,
                             co2e_g, resource_share)

ROOT = Path(__file__).resolve().parents[2]


def burn_cpu(seconds: float) -> float:
    """Keep this thread busy for ``seconds`` of process CPU time (not wall time); the CPU time it took."""
    start = time.process_time()
    total = 0
    while time.process_time() - start < seconds:
        total += sum(i * i for i in range(2000))
    return time.process_time() - start


@pytest.fixture
def no_counters(monkeypatch):
    """As on this machine, whatever machine runs the tests: neither NVML nor RAPL is readable."""
    monkeypatch.setattr(energy, "_nvml_readable", lambda: False)
    monkeypatch.setattr(energy, "_rapl_readable", lambda: False)


class FakeMonitor:
    """Stands in for the CodeCarbon windows (``trainers.energy._CodeCarbonWindows``): each ``end_window`` returns the
    next of ``windows`` (GPU joules and CPU package joules), or raises it if it is an exception."""

    def __init__(self, *windows):
        self.windows = list(windows)
        self.open: set[str] = set()
        self.calls: list[str] = []

    def begin_window(self, key, restart=False):
        assert restart or key not in self.open
        self.open.add(key)
        self.calls.append("begin")

    def end_window(self, key):
        self.open.remove(key)  # a window that is not open raises
        self.calls.append("end")
        window = self.windows.pop(0)
        if isinstance(window, BaseException):
            raise window
        gpu, cpu = window
        return energy.Reading(gpu_j=gpu, cpu_j=cpu)


def with_counters(monkeypatch, *, nvml: bool, rapl: bool, monitor: FakeMonitor) -> list[str]:
    made: list[str] = []

    def make(source):
        made.append(source)
        return monitor

    monkeypatch.setattr(energy, "_nvml_readable", lambda: nvml)
    monkeypatch.setattr(energy, "_rapl_readable", lambda: rapl)
    monkeypatch.setattr(energy, "_monitor", make)
    return made


# -- the estimate: real, on this machine ------------------------------------------------------------------------------

def test_this_machine_has_no_counters_so_its_meter_estimates():
    if Path("/sys/class/powercap").exists():
        pytest.skip("this machine has RAPL: CodeCarbon reads it")
    assert EnergyMeter("cpu").source == "estimate"
    assert EnergyMeter("cuda:0").source in ("nvml", "estimate")  # no NVIDIA driver here: estimate


def test_an_estimate_is_the_process_cpu_time_times_the_watts_per_core(no_counters):
    watts = 10.0
    outer_start = time.process_time()
    meter = EnergyMeter("cpu", cpu_watts_per_core=watts)
    inner_start = time.process_time()
    burn_cpu(0.05)
    inner = time.process_time() - inner_start
    joules = meter.lap()
    outer = time.process_time() - outer_start
    assert meter.source == "estimate"
    # the lap's CPU time lies between what was measured inside it and around it (one clock, monotonic)
    assert 0 < inner * watts <= joules <= outer * watts


    before_first = time.process_time()
    meter.lap()
    after_first = time.process_time()
    burn_cpu(0.02)
    before_second = time.process_time()
    second = meter.lap()  # only since the previous lap
    after_second = time.process_time()
    assert 0 < (before_second - after_first) * watts <= second <= (after_second - before_first) * watts


def test_an_estimate_counts_only_this_process_so_no_share_applies(no_counters):
    halved = EnergyMeter("cpu", share=0.5, cpu_watts_per_core=DEFAULT_CPU_WATTS_PER_CORE)
    burned = burn_cpu(0.03)
    assert halved.lap() >= burned * DEFAULT_CPU_WATTS_PER_CORE  # charged in full


def test_meter_settings_are_checked():
    with pytest.raises(ValueError, match="0 < share <= 1"):
        EnergyMeter("cpu", share=0.0)
    with pytest.raises(ValueError, match="cpu_watts_per_core"):
        EnergyMeter("cpu", cpu_watts_per_core=-1.0)


# -- NVML and RAPL (through CodeCarbon; a stand-in here) --------------------------------------------------------

def test_on_cuda_with_an_nvml_counter_a_trial_is_charged_its_share_of_the_gpus(monkeypatch):
    monitor = FakeMonitor((160.0, 9.0), (40.0, 9.0))  # CodeCarbon sums the GPUs the trial sees
    made = with_counters(monkeypatch, nvml=True, rapl=True, monitor=monitor)
    meter = EnergyMeter("cuda:0", share=0.25)
    assert meter.source == "nvml" and made == ["nvml"]
    assert meter.lap() == pytest.approx(0.25 * 160.0)  # the sum over the GPUs the trial sees, times its share
    assert meter.lap() == pytest.approx(0.25 * 40.0)
    assert monitor.calls == ["begin", "end", "begin", "end", "begin"]  # one window per lap, the next one open


def test_rapl_counts_the_packages_times_cpus_over_cores(monkeypatch):
    monkeypatch.setattr(energy.os, "cpu_count", lambda: 8)
    monitor = FakeMonitor((0.0, 128.0))
    made = with_counters(monkeypatch, nvml=True, rapl=True, monitor=monitor)
    meter = EnergyMeter.for_resources("cpu", gpus=0, cpus=2)  # not on CUDA: NVML is not this trial's
    assert meter.source == "rapl" and made == ["rapl"] and meter.share == 0.25
    assert meter.lap() == pytest.approx(0.25 * 128.0)


def test_sources_are_chosen_in_order(monkeypatch):
    monitor = FakeMonitor()
    with_counters(monkeypatch, nvml=True, rapl=False, monitor=monitor)
    assert EnergyMeter("cuda:0").source == "nvml" and EnergyMeter("cpu").source == "estimate"
    with_counters(monkeypatch, nvml=False, rapl=True, monitor=monitor)
    assert EnergyMeter("cuda:0").source == "rapl"
    with_counters(monkeypatch, nvml=False, rapl=False, monitor=monitor)
    assert EnergyMeter("cuda:0").source == "estimate"
    assert set(ENERGY_SOURCES) == {"nvml", "rapl", "estimate"}


def test_shares_follow_the_attribution_rules(monkeypatch):
    monkeypatch.setattr(energy.os, "cpu_count", lambda: 16)
    assert resource_share("nvml", gpus=0.5, cpus=4) == 0.5  # a fractional GPU
    assert resource_share("nvml", gpus=2, cpus=4) == 1.0  # several GPUs: their sum, in full
    assert resource_share("rapl", gpus=0, cpus=4) == 0.25
    assert resource_share("rapl", gpus=0, cpus=64) == 1.0  # never more than the package
    assert resource_share("estimate", gpus=0.5, cpus=4) == 1.0


def test_a_failed_read_is_nan_with_a_warning_and_the_next_epoch_reads_again(monkeypatch, caplog):
    monitor = FakeMonitor(RuntimeError("NVML: GPU is lost"), (30.0, 5.0))
    with_counters(monkeypatch, nvml=True, rapl=False, monitor=monitor)
    meter = EnergyMeter("cuda:0")
    with caplog.at_level(logging.WARNING, logger="trainers.energy"):
        assert math.isnan(meter.lap())
    assert "GPU is lost" in caplog.text and "NaN" in caplog.text
    assert meter.lap() == 30.0 and meter.source == "nvml"  # never another source mid-trial


def test_a_monitor_that_cannot_start_gives_nan_and_never_fails_the_trial(monkeypatch, caplog):
    def refuse(source):
        raise RuntimeError("Root privilege is required to read RAPL metrics")

    monkeypatch.setattr(energy, "_nvml_readable", lambda: False)
    monkeypatch.setattr(energy, "_rapl_readable", lambda: True)
    monkeypatch.setattr(energy, "_monitor", refuse)
    with caplog.at_level(logging.WARNING, logger="trainers.energy"):
        meter = EnergyMeter("cpu")
    assert meter.source == "rapl" and "Root privilege" in caplog.text
    assert math.isnan(meter.lap()) and math.isnan(meter.lap())


def test_codecarbon_windows_made_here_measure_and_write_nothing(tmp_path, monkeypatch):
    """The real CodeCarbon tracker, as the meter makes it: a window reads (here only estimates, which the meter never
    uses on this machine) and nothing is written to the working folder."""
    monkeypatch.chdir(tmp_path)
    windows = energy._CodeCarbonWindows()
    windows.begin_window("w")
    reading = windows.end_window("w")
    assert reading.gpu_j == 0.0 and reading.cpu_j >= 0.0 and list(tmp_path.iterdir()) == []


# -- CO2 --------------------------------------------------------------------------------------------------------------

def test_co2e_converts_joules_to_kwh_times_the_grid_intensity():
    assert co2e_g(3.6e6, DEFAULT_GRID_GCO2_PER_KWH) == pytest.approx(480.0)  # one kWh at the world average
    assert co2e_g(1000.0, 480.0) == pytest.approx(1000.0 / 3.6e6 * 480.0)
    assert co2e_g(0.0, 480.0) == 0.0


def test_importing_the_meter_loads_neither_torch_nor_codecarbon():
    code = ("import json, sys; import trainers.energy; "
            "print(json.dumps([m for m in ('torch', 'codecarbon') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# -- a batched worker splits each round's energy among its members ------------------------------------------------

def test_a_batched_round_is_split_equally_among_its_members():
    from search._tune._batching import BatchWorker
    from trainers import Mnist1dSource, search_data

    worker = BatchWorker(search_data(Mnist1dSource(num_samples=200), seed=0), capacity=2, want_gpu=False, threads=1,
                         deterministic=True)
    worker._meter = SimpleNamespace(lap=lambda: 10.0, source="rapl")  # a round that used 10 J
    out = {}

    def ask(key, seed):
        out[key] = worker.epoch(key, "mlp", {"width": 16, "batch_size": 64, "schedule": "constant"}, 2, seed, 0,
                                1, None)

    threads = [threading.Thread(target=ask, args=(key, seed), daemon=True) for key, seed in (("a", 1), ("b", 2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive(), "the round never started"
    for key in "ab":
        metrics = out[key][0]
        assert metrics["batch_members"] == 2.0
        assert metrics["epoch_energy_j"] == 5.0 and metrics["energy_source"] == "rapl"


# -- end to end: every epoch of every trial reports its energy ------------------------------------------------------

@pytest.mark.parametrize("resources", [{"cpus": 1}, {"cpus": 1, "trials_per_worker": 2}], ids=["solo", "batched"])
def test_every_epoch_reports_its_energy_along_the_checkpoint_chain(ray_session, tmp_path, env_without_tracking,
                                                                     resources):
    from search import run_experiment
    from search.records import read_trials
    from tests.helpers import tiny_config

    config = tiny_config("energy", budget={"trials": 2, "max_concurrent": 2}, searcher={"type": "random"},
                         scheduler={"type": "none", "max_epochs": 3}, resources=resources,
                         # trial 1 fails before its second report and restarts from its first checkpoint
                         faults=[{"trials": [1], "raise_at_epoch": 2, "first_attempt_only": True}])
    result = run_experiment(config, workdir=tmp_path, stream=io.StringIO())
    curves = pq.read_table(result.curves_path).to_pylist()
    assert {(c["trial"], c["epoch"]) for c in curves} == {(t, e) for t in (0, 1) for e in (1, 2, 3)}
    for trial in (0, 1):
        rows = sorted((c for c in curves if c["trial"] == trial), key=lambda c: c["epoch"])
        assert all(r["epoch_energy_j"] > 0 for r in rows)  # each epoch used some CPU
        # cumulative along the chain: the restarted attempt went on from the joules saved with epoch 1's checkpoint
        running = 0.0
        for row in rows:
            running += row["epoch_energy_j"]
            assert row["energy_j"] == pytest.approx(running, rel=1e-12)
        assert rows[-1]["energy_j"] > 0
    assert {r["number"]: r["attempts"] for r in read_trials(result.folder)} == {0: 1, 1: 2}  # the drill restarted 1
    files = [p.read_text().split() for p in (result.folder / "tune").rglob("energy")]  # "<joules> <source>"
    assert files and {source for _, source in files} == {"estimate"}
    saved = [float(joules) for joules, _ in files]
    assert all(j > 0 for j in saved)
    assert {round(j, 9) for j in saved} <= {round(c["energy_j"], 9) for c in curves}
