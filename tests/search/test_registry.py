"""The registry of searchers and schedulers: every built-in declared once and read by config validation, the
factories, the CLI's help and the README's table; adding one is one module (here: one test's worth of code)."""

from __future__ import annotations

import dataclasses
import pickle
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from search.cli import main
from search.config import MAX_TRIALS, ConfigError, SchedulerConfig, SearcherConfig, _bool, _int, load_config
from search.registry import SCHEDULERS, SEARCHERS, NoSettings, Scheduler, Searcher, markdown, setting, settings_schema
from tests.conftest import ROOT
from tests.helpers import tiny_config

BUILTIN_SEARCHERS = ("tpe", "random", "cmaes", "grid", "evolution", "reinforce", "motpe", "nsga2", "nsga3")
BUILTIN_SCHEDULERS = ("asha", "hyperband", "median", "none")
GRID_SPACE = {"lr": {"type": "categorical", "choices": [0.003, 0.01]}, "width": {"type": "categorical",
              "choices": [16, 32]}, "batch_size": 64}


def _config(**sections):
    """A tiny experiment's validated config (one trial at a time: HyperBand takes no max_concurrent)."""
    space = GRID_SPACE if (sections.get("searcher") or {}).get("type") == "grid" else tiny_config()["space"]
    return load_config(tiny_config(space=space, **{"budget": {"trials": 4}, **sections}))


def test_the_builtins_are_registered_in_their_order():
    assert SEARCHERS.names() == BUILTIN_SEARCHERS and SCHEDULERS.names() == BUILTIN_SCHEDULERS


def test_readme_table_is_the_registrys():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- registry table:[^\n]*-->\n(.*?)\n<!-- end of registry table -->", text, re.DOTALL)
    assert block, "README.md lost its registry table markers"
    assert block.group(1) == markdown(), "regenerate it: python -m search.registry --markdown"
    printed = subprocess.run([sys.executable, "-m", "search.registry", "--markdown"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    assert printed.rstrip("\n") == markdown()


@pytest.mark.parametrize("verb", ["run", "validate"])
def test_cli_help_lists_every_type_and_setting(verb, capsys):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    help_text = capsys.readouterr().out
    for entry in (*SEARCHERS, *SCHEDULERS):
        assert re.search(rf"^  {entry.name} ", help_text, re.MULTILINE)
        assert all(f"{f.name}:" in help_text for f in settings_schema(entry.settings))


@pytest.mark.parametrize("entry", [*SEARCHERS, *SCHEDULERS], ids=lambda e: e.name)
def test_every_entry_declares_a_usable_schema(entry):
    assert entry.summary and dataclasses.is_dataclass(entry.settings)
    assert entry.settings.__dataclass_params__.frozen  # parsed settings are value objects
    for field in settings_schema(entry.settings):
        assert field.metadata["help"]
        assert field.metadata["check"](f"x.{field.name}", field.default) == field.default  # defaults pass
    section = "searcher" if isinstance(entry, Searcher) else "scheduler"
    cfg = _config(**{section: {"type": entry.name}})
    parsed = getattr(cfg, section)
    assert parsed.type == entry.name and parsed.settings == entry.settings()
    assert load_config(cfg) == cfg  # to_dict() round-trips through validation


@pytest.mark.parametrize("name", BUILTIN_SEARCHERS)
def test_every_searcher_factory_builds_a_seeded_optuna_sampler(name):
    import optuna

    from search._optuna import make_sampler

    cfg = _config(searcher={"type": name})
    sampler = make_sampler(cfg.searcher, cfg.space, seed=3)
    assert isinstance(sampler, optuna.samplers.BaseSampler)
    assert cfg.searcher.max_trials(cfg.space) == (4 if name == "grid" else None)  # a grid caps the budget


@pytest.mark.parametrize("name", BUILTIN_SCHEDULERS)
def test_every_scheduler_factory_builds_a_ray_scheduler(name):
    from ray.tune.schedulers import TrialScheduler

    from search._tune._scheduling import make_scheduler

    cfg = _config(scheduler={"type": name, "max_epochs": 4})
    assert isinstance(make_scheduler(cfg.scheduler), TrialScheduler)


def test_a_section_takes_only_its_own_types_settings():
    with pytest.raises(ConfigError, match=r"^searcher.population_size: unknown setting \(allowed here: type\)$"):
        _config(searcher={"type": "random", "population_size": 4})
    with pytest.raises(ConfigError, match=r"^scheduler.promotion: unknown setting \(allowed here: type, max_epochs, "
                                          r"reduction_factor\)$"):
        _config(scheduler={"type": "hyperband", "promotion": "ordered"})
    with pytest.raises(ConfigError, match="searcher.type: must be one of tpe, random, cmaes, grid, evolution"):
        _config(searcher={"type": "bayes"})
    with pytest.raises(ConfigError, match="searcher.n_startup_trials: must be an integer >= 0"):
        SearcherConfig.of("cmaes", n_startup_trials=-1)


def test_parsed_sections_hold_one_types_settings_and_read_them_as_attributes():
    cfg = _config(scheduler={"type": "median", "max_epochs": 4, "min_samples_required": 2})
    assert cfg.scheduler.min_samples_required == 2 and cfg.scheduler.max_epochs == 4
    assert cfg.scheduler.promotion == "async"  # a scheduler without the setting decides on arrival
    with pytest.raises(AttributeError, match="of type 'median' has no setting 'reduction_factor'"):
        cfg.scheduler.reduction_factor  # noqa: B018
    assert cfg.scheduler.to_dict() == {"type": "median", "max_epochs": 4, "grace_period": 1,
                                       "min_samples_required": 2}
    assert SchedulerConfig() == SchedulerConfig.of("asha") and SearcherConfig() == SearcherConfig.of("tpe")
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # Tune pickles what holds it
    with pytest.raises(TypeError, match="scheduler 'asha' takes AshaSettings"):
        SchedulerConfig("asha", 4, cfg.scheduler.settings)


def test_a_taken_name_cannot_be_registered_again():
    with pytest.raises(ValueError, match="searcher 'tpe' is already registered"):
        SEARCHERS.register(Searcher("tpe", "another", NoSettings, lambda *a: None))
    SEARCHERS.register(SEARCHERS["tpe"])  # the same entry again (a module imported twice) is a no-op


# --- adding one: a module's worth of declaration, and nothing else changes -------------------------------------


@dataclass(frozen=True)
class _QMCSettings:
    scramble: bool = setting(True, _bool, "scramble the Sobol sequence")
    warmup: int = setting(0, _int(0, MAX_TRIALS), "points skipped at the start")


def _make_qmc(settings, space, seed, constrained):
    import optuna

    return optuna.samplers.QMCSampler(scramble=settings.scramble, seed=seed, warn_independent_sampling=False)


@dataclass(frozen=True)
class _StepSettings:
    every: int = setting(2, _int(1, 100), "epochs between decisions")


def _make_step(settings, max_epochs):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


@pytest.fixture
def added():
    searcher = SEARCHERS.register(Searcher("qmc", "quasi-Monte Carlo points", _QMCSettings, _make_qmc))
    scheduler = SCHEDULERS.register(Scheduler("step", "a toy scheduler", _StepSettings, _make_step, pauses_trials=True))
    yield searcher, scheduler
    SEARCHERS.unregister("qmc")
    SCHEDULERS.unregister("step")


def test_adding_a_searcher_and_a_scheduler_is_one_declaration_each(added, capsys):
    import optuna

    from search._optuna import make_sampler
    from search._tune._scheduling import make_scheduler

    cfg = _config(searcher={"type": "qmc", "warmup": 3}, scheduler={"type": "step", "max_epochs": 4, "every": 1})
    assert cfg.searcher.to_dict() == {"type": "qmc", "scramble": True, "warmup": 3}
    assert cfg.scheduler.to_dict() == {"type": "step", "max_epochs": 4, "every": 1}
    assert isinstance(make_sampler(cfg.searcher, cfg.space, seed=0), optuna.samplers.QMCSampler)
    make_scheduler(cfg.scheduler)
    with pytest.raises(ConfigError, match=r"^searcher.warmup: must be an integer >= 0"):
        _config(searcher={"type": "qmc", "warmup": -1})
    # its declared traits, not its name, decide the cross-section rules
    with pytest.raises(ConfigError, match="budget.max_concurrent: cannot be combined with scheduler step"):
        _config(scheduler={"type": "step"}, budget={"trials": 4, "max_concurrent": 2})
    with pytest.raises(ConfigError, match="reproducible.mode: strict mode works with scheduler asha or none"):
        _config(scheduler={"type": "step"}, reproducible="strict")
    assert "| `qmc` | quasi-Monte Carlo points |" in markdown()
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    assert "  qmc " in capsys.readouterr().out
