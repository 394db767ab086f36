"""Every verb's NAME obeys the config's name rule: no path separator, no ``..``, nothing absolute, no trailing
newline. A bad NAME is bad input (exit 2, one line naming the field and the rule) and nothing outside the workdir
is read or written — here a real-looking experiment sits just outside it, where ``../outside`` would lead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from search.cli import main
from search.config import ConfigError, validate_name
from tests.helpers import forbid_ray_adapter, tiny_config

BAD_NAMES = ["../outside", "..", ".", "/tmp/outside", "a/b", "a\\b", "outside\n", "good\n", ".hidden", "a..b", "",
             " good", "x" * 129, "nul\x00"]
RULE = "hypernas: error: name: must start with a letter or digit and hold only letters, digits, _ . -"


def _experiment(folder: Path, name: str) -> None:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(tiny_config(name=name)))
    (folder / "state.json").write_text(json.dumps({"name": name, "status": "finished", "trials_planned": 8,
                                                   "tracking_uri": "sqlite:///nowhere.db"}))


@pytest.fixture
def site(tmp_path, monkeypatch):
    """``work/`` holds experiment ``good``; ``outside/`` beside it looks like an experiment too. Ray and MLflow
    are out of bounds (the tracking store must never appear)."""
    _experiment(tmp_path / "work" / "good", "good")
    _experiment(tmp_path / "outside", "outside")
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(tiny_config(name="fresh")))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'tracking.db'}")
    forbid_ray_adapter(monkeypatch, "the name was not refused first")
    return tmp_path


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


def _invocations(site: Path, name: str) -> list[list[str]]:
    work, config = str(site / "work"), str(site / "exp.yaml")
    return [
        ["status", name, "--workdir", work], ["status", name, "--json", "--workdir", work],
        ["best", name, "--workdir", work], ["test", name, "--workdir", work],
        ["test", name, "--force", "--workdir", work],
        ["export", name, "--out", str(site / "out.csv"), "--workdir", work],
        ["resume", name, "--workdir", work], ["sync", name, "--workdir", work],
        ["replay", name, "--trial", "0", "--workdir", work],
        ["audit", name, "--workdir", work], ["audit", name, "--json", "--workdir", work],
        ["report", name, "--workdir", work], ["ui", name, "--workdir", work],
        ["run", config, "--name", name, "--workdir", work], ["validate", config, "--name", name, "--workdir", work],
        ["submit", config, "--address", "http://127.0.0.1:9", "--name", name, "--workdir", work],
        ["simulate", config, "--curves", str(site / "curves.parquet"), "--workers", "2", "--name", name,
         "--workdir", work],
    ]


def test_every_verb_is_covered():
    from search.cli import build_parser

    verbs = set(build_parser()._subparsers._group_actions[0].choices)
    taking_a_name = {args[0] for args in _invocations(Path("/x"), "n")}
    assert verbs == taking_a_name  # (ui takes one optionally)


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_a_bad_name_is_refused_by_every_verb_and_nothing_is_touched(site, capsys, name):
    before = _snapshot(site)
    for argv in _invocations(site, name):
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        lines = captured.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(RULE), (argv, captured.err)
        assert captured.out == "", argv
    assert _snapshot(site) == before


def test_a_good_name_still_reaches_its_experiment(site, capsys):
    assert main(["status", "good", "--workdir", str(site / "work")]) == 0
    assert "good" in capsys.readouterr().out
    assert main(["status", "outside", "--workdir", str(site / "work")]) == 2  # known only outside: not found
    assert "no experiment 'outside'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../outside", "outside\n", "/tmp/outside"], ids=repr)
def test_the_python_api_refuses_bad_names_before_building_a_path(site, name):
    from search.experiment import resume_experiment, run_experiment
    from search.replay import child_run_for
    from search.selection import best_trial, run_sealed_test
    from search.workdir import ExperimentFolder, existing_experiment

    work = site / "work"
    before = _snapshot(site)
    calls = [
        lambda: ExperimentFolder(work, name), lambda: existing_experiment(work, name),
        lambda: best_trial(work, name), lambda: run_sealed_test(work, name, force=True),
        lambda: resume_experiment(work, name), lambda: child_run_for(work, name, 0),
        lambda: run_experiment(site / "exp.yaml", workdir=work, name=name),
    ]
    for call in calls:
        with pytest.raises(ConfigError) as info:
            call()
        assert info.value.path == "name" and "must start with a letter or digit" in str(info.value)
    assert _snapshot(site) == before


def test_names_are_matched_whole():
    assert validate_name("quickstart") == "quickstart" and validate_name("run-2.v_3") == "run-2.v_3"
    assert validate_name("x" * 128)
    for name in BAD_NAMES + [None, 7, "tab\tname", "good\r"]:
        with pytest.raises(ConfigError):
            validate_name(name)
    with pytest.raises(ConfigError) as info:
        validate_name("a/b", field="--name")
    assert info.value.path == "--name"


@pytest.mark.parametrize("name", ["mlartifacts", "mlflow.db", "test_ledger.jsonl"])
def test_the_workdirs_own_entries_are_not_experiment_names(name):
    with pytest.raises(ConfigError, match="the workdir's own"):
        validate_name(name)


def test_overwrite_replaces_experiments_only(site, capsys):
    keep = site / "work" / "notes"
    keep.mkdir()
    (keep / "mine.txt").write_text("not an experiment")
    assert main(["run", str(site / "exp.yaml"), "--name", "notes", "--overwrite", "--workdir", str(site / "work")]) == 2
    assert "is not an experiment" in capsys.readouterr().err
    assert (keep / "mine.txt").read_text() == "not an experiment"
