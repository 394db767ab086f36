"""The two shims that hold every Ray and Optuna private name hypernas uses: their version check, their functions on
the libraries' real classes (a rename inside a supported release fails here), and a scan that no other module of
search/ touches a private name."""

from __future__ import annotations

import ast
import importlib.util
import math
import signal
import warnings

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
import ray
from ray.tune.experiment import Trial
from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

from search._optuna import _optuna_internals as optuna_internals
from search._tune import _ray_internals as ray_internals
from tests.conftest import ROOT

SHIMS = {ROOT / "search" / "_tune" / "_ray_internals.py", ROOT / "search" / "_optuna" / "_optuna_internals.py"}

# The Ray and Optuna private names hypernas has needed; only the shims may use them. Besides these, any import of a
# private module or name of either library counts (``ray._private``, ``from optuna.x import _y``).
PRIVATE_NAMES = frozenset({
    "_private", "_internal", "_live_trials", "_schedule_trial_train", "_tune_controller", "_wrapped",
    "_trial_info", "_rungs", "_metric_op", "_max_t", "_max_t_attr", "_stop_last_trials", "_supports_buffered_results",
    "_local_tuner", "_tune_config", "_run_config", "_setup_signal_catching",
    "_storage", "_trial_id", "_get_trials", "_contains",
})
LIBRARIES = ("ray", "optuna")


# -- helpers for other tests: a real TuneController, driven as Tune drives a scheduler ------------------------------

def tune_controller(scheduler: TrialScheduler | None = None):
    """A real ``TuneController`` (needs a running Ray: the ``ray_session`` fixture) with no cluster resources
    (trials never start actors), whose training tasks are recorded in ``controller.trained`` instead of sent to an
    actor, and whose stops are recorded, in order with them, in ``controller.actions``."""
    from ray.air.execution import FixedResourceManager
    from ray.tune.execution.tune_controller import TuneController

    controller = TuneController(scheduler=scheduler, resource_manager_factory=FixedResourceManager)
    controller.actions = []
    stop = controller.stop_trial

    def record_stop(trial):
        controller.actions.append(("stop", trial.config["trial_number"]))
        stop(trial)

    def record_task(trial, method_name, **kwargs):  # what _schedule_trial_train asks of the actor
        controller.actions.append((method_name, trial.config["trial_number"]))

    controller.stop_trial = record_stop
    controller._schedule_trial_task = record_task  # replaces the real one: there is no actor to run it
    return controller


def running_trials(controller, count: int) -> list[Trial]:
    """``count`` real trials added to ``controller`` (its scheduler sees ``on_trial_add``) and RUNNING."""
    trials = [Trial("__fake", config={"trial_number": n}, stub=True) for n in range(count)]
    for trial in trials:
        controller.add_trial(trial)
        controller._set_trial_status(trial, Trial.RUNNING)  # what Tune does once the trial's actor started
    return trials


def as_tune_reports(controller, scheduler: TrialScheduler, trial: Trial, result: dict) -> str:
    """``result`` of ``trial`` to ``scheduler`` as Tune passes it: through the restricted wrapper, after the trial
    recorded it as its last result."""
    trial.update_last_result(dict(result))
    return scheduler.on_trial_result(controller._wrapped(), trial, result)


# -- version checks -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shim, good, bad", [
    (ray_internals, ["2.60.0", "2.60.3", "2.60.0rc1"], ["2.61.0", "2.6.0", "3.0.0", "2.59.1"]),
    (optuna_internals, ["5.0.0", "5.0.2"], ["5.1.0", "4.6.0", "50.0.0"]),
])
def test_check_version_accepts_the_supported_release_only(shim, good, bad):
    for installed in good:
        shim.check_version(installed)
    for installed in bad:
        with pytest.raises(ImportError) as err:
            shim.check_version(installed)
        message = str(err.value)
        assert f" {installed} is installed" in message and f"{shim.SUPPORTED}.x only" in message
        assert f"=={shim.SUPPORTED}.0" in message  # says what to install


@pytest.mark.parametrize("library, path", [
    (ray, ROOT / "search" / "_tune" / "_ray_internals.py"),
    (optuna, ROOT / "search" / "_optuna" / "_optuna_internals.py"),
])
def test_importing_a_shim_under_another_release_fails_with_the_versions(library, path, monkeypatch):
    monkeypatch.setattr(library, "__version__", "99.1.0")
    spec = importlib.util.spec_from_file_location(f"_probe_{path.stem}", path)  # a fresh copy, not the imported one
    with pytest.raises(ImportError, match=r"supports \w+ \d+\.\d+\.x only .* but \w+ 99\.1\.0 is installed"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


# -- the scan: private names only in the shims ----------------------------------------------------------------------

def private_uses(source: str) -> list[str]:
    """Where ``source`` touches a Ray/Optuna private name: ``x._name`` or ``getattr(x, "_name")`` for a name in
    PRIVATE_NAMES, and imports of private modules or names of either library."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Constant) and node.value in PRIVATE_NAMES:
            found.append(f"{node.lineno}: {node.value!r}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            names = node.module.split(".") + [alias.name for alias in node.names]
            if any(name.startswith("_") for name in names):
                found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in LIBRARIES and any(part.startswith("_") for part in parts):
                    found.append(f"{node.lineno}: import {alias.name}")
    return found


def test_the_scan_finds_each_form_of_private_access():
    source = "\n".join([
        "controller._live_trials.discard(trial)",
        "getattr(wrapper, '_tune_controller', wrapper)",
        "from ray._private import services",
        "import ray._private.services",
        "from optuna.study._constrained_optimization import X",
        "from ray.tune.tune import _setup_signal_catching",
        "study._storage.set_trial_system_attr(trial._trial_id, 'k', 1)",
        "x = 'a docstring that names _rungs is fine'",
        "self._draining = True  # our own private state is fine",
        "from search._tune._common import TIME_ATTR  # our own private modules are fine",
    ])
    assert sorted(int(use.split(":")[0]) for use in private_uses(source)) == [1, 2, 3, 4, 5, 6, 7, 7]


def test_no_module_but_the_shims_uses_a_ray_or_optuna_private_name():
    offenders = {}
    for path in sorted((ROOT / "search").rglob("*.py")):
        if path not in SHIMS and (uses := private_uses(path.read_text(encoding="utf-8"))):
            offenders[str(path.relative_to(ROOT))] = uses
    assert offenders == {}, "use search/_tune/_ray_internals.py or search/_optuna/_optuna_internals.py"


# -- Ray: ASHA ------------------------------------------------------------------------------------------------------

def _asha(mode: str, **options) -> AsyncHyperBandScheduler:
    scheduler = AsyncHyperBandScheduler(time_attr="epoch", max_t=8, grace_period=1, reduction_factor=2, **options)
    scheduler.set_search_properties("loss" if mode == "min" else "accuracy", mode)
    return scheduler


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")
@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("rf", [2, 3, 4])
def test_kept_sorted_cutoffs_are_ashas_own_to_the_last_bit(mode, rf):
    """With sorted_asha_cutoffs, ASHA makes every decision its unpatched twin makes, and each cutoff is the very
    number np.nanpercentile gives over the rung (``_Bracket.cutoff`` as Ray wrote it), ties, infinities and NaNs
    included; values refilled onto a rung (a resumed experiment) are taken in too."""
    import random
    from types import SimpleNamespace

    import numpy as np
    from ray.tune.schedulers.async_hyperband import _Bracket

    rng = random.Random(rf)
    metric = "loss" if mode == "min" else "accuracy"

    def asha():
        scheduler = AsyncHyperBandScheduler(time_attr="epoch", max_t=27, grace_period=1, reduction_factor=rf)
        scheduler.set_search_properties(metric, mode)
        return scheduler

    stock, fast = asha(), ray_internals.sorted_asha_cutoffs(asha())
    assert ray_internals.sorted_asha_cutoffs(fast) is fast  # installing twice changes nothing
    twins = [
        [SimpleNamespace(trial_id=f"t{n}", config={}, status=Trial.RUNNING) for n in range(300)] for _ in (stock, fast)
    ]
    for scheduler, trials in zip((stock, fast), twins):
        for trial in trials:
            scheduler.on_trial_add(None, trial)
    compared = 0
    for epoch in (1, 2, 3, 5, 9, 12, 26):
        for mine, theirs in zip(*twins):
            if mine.status != Trial.RUNNING:
                continue
            value = rng.choice(
                [rng.random(), round(rng.random(), 1), 1, 0.5, -rng.random() * 1e-9, math.inf, -math.inf, math.nan]
            )
            for milestone, recorded in ray_internals.asha_rungs(fast, theirs):
                if epoch >= milestone and theirs.trial_id not in recorded:
                    bracket = fast._trial_info[theirs.trial_id]
                    rung = dict(bracket._rungs)[milestone]
                    with np.errstate(all="ignore"), warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        expected = _Bracket.cutoff(bracket, rung)
                        got = ray_internals.asha_cutoff(fast, theirs, milestone)
                    if expected is None:  # nothing recorded there yet
                        assert got is None
                    else:
                        assert np.array_equal([got], [expected * fast._metric_op], equal_nan=True)
                        compared += 1
                    break
            decisions = [
                scheduler.on_trial_result(None, trial, {"epoch": epoch, metric: value})
                for scheduler, trial in ((stock, mine), (fast, theirs))
            ]
            assert decisions[0] == decisions[1]
            if decisions[0] == TrialScheduler.STOP:
                mine.status = theirs.status = Trial.TERMINATED
    assert compared > 300

    # a rung refilled on resume (asha_record) then read: the refilled values count
    refilled = ray_internals.sorted_asha_cutoffs(asha())
    trials = [SimpleNamespace(trial_id=f"r{n}", config={}, status=Trial.RUNNING) for n in range(7)]
    for trial in trials:
        refilled.on_trial_add(None, trial)
    refilled.on_trial_result(None, trials[0], {"epoch": 1, metric: 0.5})  # the rung is read once, then refilled
    for n, trial in enumerate(trials[1:6]):
        ray_internals.asha_record(refilled, trial, 1, n / 10)
    rung = dict(refilled._trial_info["r6"]._rungs)[1]
    assert ray_internals.asha_cutoff(refilled, trials[6], 1) == float(
        np.nanpercentile(list(rung.values()), (1 - 1 / rf) * 100) * refilled._metric_op
    )


@pytest.mark.parametrize("mode, values", [("max", [0.5, 0.4, 0.6]), ("min", [0.5, 0.6, 0.4])])
def test_asha_rungs_and_cutoff_on_a_real_scheduler(mode, values):
    metric = "loss" if mode == "min" else "accuracy"
    asha = _asha(mode)
    trials = [Trial("__fake", config={"trial_number": n}, stub=True) for n in range(5)]
    for trial in trials:
        asha.on_trial_add(None, trial)
    assert [milestone for milestone, _ in ray_internals.asha_rungs(asha, trials[0])] == [8, 4, 2, 1]
    assert ray_internals.asha_cutoff(asha, trials[0], 1) is None  # nothing recorded yet
    for trial, value in zip(trials, values):  # each is recorded at rung 1, stopped or not
        asha.on_trial_result(None, trial, {"epoch": 1, metric: value})
    recorded = dict(ray_internals.asha_rungs(asha, trials[0]))
    assert recorded[1] == {t.trial_id for t in trials[:3]} and recorded[2] == frozenset()

    # the cutoff is ASHA's own, in metric units: a result on the bad side of it stops, one on the good side goes on
    cutoff = ray_internals.asha_cutoff(asha, trials[3], 1)
    assert cutoff == pytest.approx(sorted(values)[1])  # the median of three: reduction factor 2
    worse, better = (cutoff - 0.05, cutoff + 0.05) if mode == "max" else (cutoff + 0.05, cutoff - 0.05)
    assert asha.on_trial_result(None, trials[3], {"epoch": 1, metric: worse}) == TrialScheduler.STOP
    assert asha.on_trial_result(None, trials[4], {"epoch": 1, metric: better}) == TrialScheduler.CONTINUE

    # refilling a fresh scheduler's rungs (a resumed experiment) gives the same cutoffs
    refilled = _asha(mode)
    for trial in trials[:3]:
        refilled.on_trial_add(None, trial)
    for trial, value in zip(trials[:3], values):
        assert ray_internals.asha_record(refilled, trial, 1, value) is True
    assert ray_internals.asha_record(refilled, trials[0], 1, 0.0) is False  # recorded there already
    assert ray_internals.asha_record(refilled, trials[0], 3, 0.0) is False  # no such rung
    assert ray_internals.asha_cutoff(refilled, trials[0], 1) == pytest.approx(cutoff)

    # a completed trial leaves ASHA's books
    asha.on_trial_complete(None, trials[0], {"epoch": 1, metric: values[0]})
    assert ray_internals.asha_rungs(asha, trials[0]) == [] and not ray_internals.asha_record(asha, trials[0], 2, 1.0)


def test_asha_and_hyperband_limits_on_real_schedulers():
    assert ray_internals.asha_stops_unrecorded_from(_asha("max")) == 8
    assert ray_internals.asha_stops_unrecorded_from(_asha("max", stop_last_trials=False)) == math.inf
    assert ray_internals.max_t(_asha("max")) == 8
    assert ray_internals.max_t(HyperBandScheduler(time_attr="epoch", max_t=6)) == 6
    assert ray_internals.max_t(MedianStoppingRule(time_attr="epoch")) == math.inf
    assert ray_internals.max_t(FIFOScheduler()) == math.inf


# -- Ray: the controller, the tuner, signals, cluster discovery -------------------------------------------------------

def test_controller_functions_on_a_real_tune_controller(ray_session):
    controller = tune_controller()
    wrapped = controller._wrapped()  # what Tune hands a scheduler
    assert ray_internals.controller_of(wrapped) is controller and ray_internals.controller_of(controller) is controller
    first, second = running_trials(controller, 2)

    ray_internals.retire_trial(wrapped, first)
    assert first.status == Trial.TERMINATED and first not in controller.get_live_trials()
    assert second in controller.get_live_trials()

    ray_internals.resume_training(wrapped, second)
    assert controller.actions == [("train", 1)]  # the task Tune's CONTINUE sends to the trial's actor


def test_replace_restored_config_on_a_real_tuner(ray_session, tmp_path):
    from ray import tune

    tuner = tune.Tuner(lambda config: None, tune_config=tune.TuneConfig(num_samples=1),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), name="exp"))
    config, callbacks = tune.TuneConfig(num_samples=3, metric="loss", mode="min"), [tune.Callback()]
    ray_internals.replace_restored_config(tuner, config, callbacks)
    assert tuner._local_tuner._tune_config is config and tuner._local_tuner.get_run_config().callbacks is callbacks


def test_tune_stop_handler_is_the_one_tune_installs():
    from ray.tune.tune import _setup_signal_catching

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGUSR1)}
    try:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)  # an earlier Tune run in this process leaves its handler set
        assert ray_internals.tune_stop_handler() is None  # not Tune's: nothing to stop gracefully
        event = _setup_signal_catching()  # what tune.run does before it starts
        handler = ray_internals.tune_stop_handler()
        assert handler is not None and not event.is_set()
        handler(signal.SIGUSR1, None)
        assert event.is_set()  # Tune's loop ends at its next step
    finally:
        for signum, previous in before.items():
            signal.signal(signum, previous)


def test_cluster_discovery_sees_the_running_instance(ray_session):
    from ray._private import services

    services.find_gcs_addresses.cache_clear()  # Ray caches what it found; another test may have run it before
    live = ray_internals.live_gcs_addresses()
    assert ray.get_runtime_context().gcs_address in live and all(isinstance(address, str) for address in live)
    recorded = ray_internals.recorded_cluster_address()
    assert recorded is None or isinstance(recorded, str)


# -- Optuna -----------------------------------------------------------------------------------------------------------

def test_optuna_functions_on_a_real_study(tmp_path):
    from search._optuna import journal_storage

    path = tmp_path / "optuna.journal"
    study = optuna.create_study(study_name="s", storage=journal_storage(path), direction="maximize")
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.report(0.25, step=1)
    optuna_internals.set_system_attr(study, trial, "plan", {"x": 0.5})  # a live Trial
    frozen = study.get_trials(deepcopy=False)[0]
    optuna_internals.set_system_attr(study, frozen, "parent", 3)  # a FrozenTrial, as samplers get one

    # after a driver crash: the study from its journal, the running trial re-attached, reported to and told
    reloaded = optuna.load_study(study_name="s", storage=journal_storage(path))
    (running,) = reloaded.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    assert running.system_attrs["plan"] == {"x": 0.5} and running.system_attrs["parent"] == 3
    live = optuna_internals.running_trial(reloaded, running)
    assert isinstance(live, optuna.Trial) and live.number == 0 and live.params == running.params
    live.report(0.5, step=2)
    reloaded.tell(live, 0.5)
    (told,) = optuna.load_study(study_name="s", storage=journal_storage(path)).trials
    assert told.state == TrialState.COMPLETE and told.value == 0.5 and told.intermediate_values == {1: 0.25, 2: 0.5}


def test_distribution_contains_on_real_distributions():
    contains = optuna_internals.distribution_contains
    assert contains(FloatDistribution(0.0, 1.0), 0.5) and not contains(FloatDistribution(0.0, 1.0), 1.5)
    assert contains(FloatDistribution(1e-3, 1.0, log=True), 0.01)
    assert contains(IntDistribution(0, 8, step=2), 4) and not contains(IntDistribution(0, 8, step=2), 3)
    assert contains(CategoricalDistribution(["adamw", "sgd"]), "sgd")
    assert not contains(CategoricalDistribution(["adamw", "sgd"]), "adam")
    assert not contains(FloatDistribution(0.0, 1.0), "high")  # not a number at all


def test_study_file_fsyncs_only_what_ends_a_trial_and_loses_nothing_it_wrote(tmp_path, monkeypatch):
    """Optuna's journal file, written through ``StudyFileBackend``: every log lands in the file (a reload sees each
    intermediate value and parameter), but only study changes and trial ends are fsync-ed."""
    import os

    from search._optuna import journal_storage

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    path = tmp_path / "study.journal"
    study = optuna.create_study(study_name="s", storage=journal_storage(path),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    created = len(synced)
    assert created >= 1  # the study itself is durable
    trial = study.ask({"x": FloatDistribution(0, 1), "y": IntDistribution(0, 9)})
    for step in range(5):
        trial.report(float(step), step)
    assert len(synced) == created, "asking, parameters and intermediate values are written, not fsync-ed"
    study.tell(trial, 0.5)
    assert len(synced) == created + 1, "a trial's end is fsync-ed"
    again = optuna.load_study(study_name="s", storage=journal_storage(path)).trials[0]
    assert again.state == TrialState.COMPLETE and again.intermediate_values == {s: float(s) for s in range(5)}
    assert set(again.params) == {"x", "y"}


def test_study_file_is_optunas_own_format_read_back_by_optunas_backend(tmp_path):
    """What ``StudyFileBackend`` writes, Optuna's own ``JournalFileBackend`` reads (the file stays an Optuna journal
    any Optuna tool opens), and the reverse."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from search._optuna import journal_storage

    path = tmp_path / "study.journal"
    study = optuna.create_study(study_name="s", storage=journal_storage(path),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for number in range(3):
        trial = study.ask({"x": FloatDistribution(0, 1)})
        trial.report(0.5 * number, 1)
        study.tell(trial, float(number))
    theirs = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path))))
    assert [(t.number, t.value, t.intermediate_values, t.params) for t in theirs.trials] == \
        [(t.number, t.value, t.intermediate_values, t.params) for t in study.trials]
    theirs.tell(theirs.ask({"x": FloatDistribution(0, 1)}), 9.0)  # written by Optuna's backend ...
    again = optuna.load_study(study_name="s", storage=journal_storage(path))  # ... read by ours
    assert [t.value for t in again.trials] == [0.0, 1.0, 2.0, 9.0]


def test_study_file_writer_reads_nothing_back_and_a_reader_sees_every_write(tmp_path, monkeypatch):
    """The writing process never reads the file again for what it wrote itself (Optuna's backend opened and read it
    on every operation); another process's storage on the file sees each write as it lands."""
    from search._optuna import _optuna_internals, journal_storage

    path = tmp_path / "study.journal"
    study = optuna.create_study(study_name="s", storage=journal_storage(path),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    reader = optuna.load_study(study_name="s", storage=journal_storage(path))  # as a `hypernas report` would
    reads = []
    real_open = open
    monkeypatch.setattr(_optuna_internals, "open", lambda *a, **k: (reads.append(a), real_open(*a, **k))[1],
                        raising=False)
    for number in range(4):
        trial = study.ask({"x": FloatDistribution(0, 1)})
        for step in range(3):
            trial.report(float(step), step)
        study.tell(trial, float(number))
        assert study.trials[-1].value == float(number)
    assert reads == [], "the writer read the file back"
    assert [t.value for t in reader.trials] == [0.0, 1.0, 2.0, 3.0] and len(reads) > 0  # the reader did
    assert reader.trials[2].intermediate_values == {0: 0.0, 1: 1.0, 2: 2.0}


def test_study_file_cuts_a_torn_last_line_before_writing_after_it(tmp_path):
    """A write a crash cut short (a last line with no newline) is not a log: readers skip it, as Optuna's own
    backend does, and the next writer cuts it off, so its logs do not land glued to it and Optuna's own backend
    still reads the whole file."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from search._optuna import journal_storage

    path = tmp_path / "study.journal"
    study = optuna.create_study(study_name="s", storage=journal_storage(path))
    study.tell(study.ask({"x": FloatDistribution(0, 1)}), 1.0)
    with path.open("ab") as out:
        out.write(b'{"op_code":5,"worker_id":"x","trial_id":0,"st')  # the driver died in this write
    resumed = optuna.load_study(study_name="s", storage=journal_storage(path))
    assert [t.value for t in resumed.trials] == [1.0]
    resumed.tell(resumed.ask({"x": FloatDistribution(0, 1)}), 2.0)
    assert path.read_bytes().endswith(b"\n") and b'"st{' not in path.read_bytes()
    theirs = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path))))
    assert [t.value for t in theirs.trials] == [1.0, 2.0]


def test_study_file_backend_hands_out_each_log_in_order_however_it_is_asked(tmp_path):
    """Optuna's backend contract: ``read_logs(n)`` yields every log from number n on, in the file's order — from
    memory for what this process wrote, from the file for what another appended, and again from the file when a
    reader asks for logs it was already given (or stopped reading halfway)."""
    from search._optuna._optuna_internals import StudyFileBackend

    path = tmp_path / "study.journal"
    writer, other = StudyFileBackend(str(path)), StudyFileBackend(str(path))
    logs = [{"op_code": 0, "worker_id": "w", "n": n} for n in range(10)]
    writer.append_logs(logs[:4])
    assert [log["n"] for log in writer.read_logs(0)] == [0, 1, 2, 3]
    other.append_logs(logs[4:6])  # another process's logs ...
    writer.append_logs(logs[6:8])  # ... come before this one's next ones, in the file and here
    assert [log["n"] for log in writer.read_logs(4)] == [4, 5, 6, 7]
    assert [log["n"] for log in writer.read_logs(8)] == []
    partly = writer.read_logs(2)  # asked again from an earlier log: read from the file
    assert [next(partly)["n"] for _ in range(2)] == [2, 3]  # and stopped halfway
    writer.append_logs(logs[8:])
    assert [log["n"] for log in writer.read_logs(4)] == [4, 5, 6, 7, 8, 9]
    assert [log["n"] for log in other.read_logs(0)] == list(range(10))
