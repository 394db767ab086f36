"""``bench/overhead.py`` is fair by construction: each side gets the same trials, reports, searcher, ASHA rungs and
concurrency, and the sides take turns going first. Checked on what the bench hands to Ray Tune and to hypernas
(both replaced by recorders here: the bench's numbers themselves are measured by running it, not in tests)."""

from __future__ import annotations

import importlib.util
import types

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from search._optuna import make_sampler
from search.config import load_config
from search.seeds import derive_seed
from search._tune._scheduling import make_scheduler
from tests.conftest import ROOT


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("overhead_bench", ROOT / "bench" / "overhead.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _draws(sampler) -> list:
    """What ``sampler`` proposes over 14 trials of one float told (x - 0.3)²: past TPE's 10 random start-up trials,
    so its model's settings show too."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler)
    draws = []
    for _ in range(14):
        trial = study.ask()
        draws.append(trial.suggest_float("x", 0.0, 1.0))
        study.tell(trial, (draws[-1] - 0.3) ** 2)
    return draws


def _rungs(scheduler) -> list:
    return [(s._time_attr, [rung[0] for rung in b._rungs], b.rf) for s in [scheduler] for b in s._brackets]


def test_every_side_gets_the_same_work(bench, monkeypatch, tmp_path):
    import optuna
    import ray.tune
    import search

    tuned, ran = [], []

    class RecordingTuner:
        def __init__(self, trainable, *, param_space, tune_config, run_config):
            tuned.append((trainable, param_space, tune_config, run_config))

    class Results(list):
        num_errors = 0

    def fit(self):
        return Results(types.SimpleNamespace(metrics={"epoch": tuned[-1][1]["epochs"]})
                       for _ in range(tuned[-1][2].num_samples))

    RecordingTuner.fit = fit
    curves = tmp_path / "curves.parquet"
    pq.write_table(pa.table({"trial": [0]}), curves)

    def recording_run(config, **kwargs):
        ran.append(config)
        return types.SimpleNamespace(counts={"COMPLETE": config["budget"]["trials"]}, curves_path=curves)

    monkeypatch.setattr(ray.tune, "Tuner", RecordingTuner)
    monkeypatch.setattr(search, "run_experiment", recording_run)
    for side in bench.SIDES:
        bench.run_side(side, trials=12, reports=7)

    hypernas_cfg = load_config(ran[0])
    assert hypernas_cfg.budget.trials == 12 and hypernas_cfg.scheduler.max_epochs == 7
    assert hypernas_cfg.trainer == "trivial_trainer:train" and hypernas_cfg.searcher.type == "tpe"
    ours = make_scheduler(hypernas_cfg.scheduler)
    hypernas_draws = _draws(make_sampler(hypernas_cfg.searcher, hypernas_cfg.space,
                                         derive_seed(hypernas_cfg.seed, "sampler")))
    for trainable, param_space, tune_config, run_config in tuned:
        assert tune_config.num_samples == 12 and param_space["epochs"] == 7  # same trials, same reports
        assert tune_config.max_concurrent_trials == hypernas_cfg.budget.max_concurrent == bench.CONCURRENCY
        assert (tune_config.metric, tune_config.mode) == (hypernas_cfg.metric.name, hypernas_cfg.metric.mode)
        assert _rungs(tune_config.scheduler) == _rungs(ours)  # the same ASHA rungs and reduction factor
        assert _draws(tune_config.search_alg._sampler) == hypernas_draws  # the same sampler, same seed
        assert trainable is bench._stock_trainable  # which runs trivial_trainer.train, hypernas's trainer too
    default, fastest = tuned
    assert (default[2].reuse_actors, fastest[2].reuse_actors) == (False, True)
    assert len(default[3].callbacks) == 1 and fastest[3].callbacks == []  # MLflow on the default side only


def test_each_side_goes_first_in_turn(bench, monkeypatch, capsys):
    order = []
    monkeypatch.setattr(bench, "run_side", lambda side, trials, reports: order.append((side, trials)) or 1.0)
    monkeypatch.setattr(bench.ray, "init", lambda **kwargs: None)
    monkeypatch.setattr("sys.argv", ["overhead.py", "--repeats", "3", "--trials", "5"])
    bench.main()
    timed = [side for side, trials in order if trials == 5]
    assert len(timed) == 9
    firsts = [timed[i] for i in (0, 3, 6)]
    assert sorted(firsts) == sorted(bench.SIDES)  # none is always first (cold)
    assert [side for side, trials in order if trials == 1] == list(bench.SIDES)  # one untimed warm-up each
    assert "median" in capsys.readouterr().out
