"""A corpus of malformed experiment files, one per way a config can be wrong, across every section and the YAML
itself. Each must be bad input everywhere it enters: ``ConfigError`` from ``load_config`` naming the field, and
exit 2 with exactly one ``hypernas: error: <field>: ...`` line from ``hypernas validate`` and ``hypernas run`` —
``run`` failing on the config before any data, Ray or MLflow, and nothing created. No Ray, no training."""

from __future__ import annotations

import copy
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from search.cli import main
from search.config import ConfigError, load_config
from tests.helpers import forbid_ray_adapter

BASE = {
    "name": "corpus",
    "seed": 0,
    "trainer": "mlp",
    "data": {"source": "mnist1d", "num_samples": 1000},
    "space": {
        "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
        "width": {"type": "categorical", "choices": [16, 32]},
        "batch_size": 64,
    },
    "metric": {"name": "val_accuracy", "mode": "max"},
    "searcher": {"type": "tpe", "n_startup_trials": 3},
    "scheduler": {"type": "asha", "max_epochs": 4, "grace_period": 1, "reduction_factor": 2},
    "budget": {"trials": 4, "max_concurrent": 2},
    "resources": {"cpus": 1},
}
BASE_TEXT = yaml.safe_dump(BASE, sort_keys=False)


def with_(**settings) -> str:
    """BASE as YAML with dotted settings replaced (``budget__trials=0`` sets budget.trials); None removes."""
    doc = copy.deepcopy(BASE)
    for dotted, value in settings.items():
        *parents, last = dotted.split("__")
        node = doc
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return yaml.safe_dump(doc, sort_keys=False)


def parquet(**data) -> str:
    """BASE with a Parquet source; ``@DIR@`` is replaced by the folder of the corpus's Parquet files."""
    return with_(data={"source": "parquet", "path": "@DIR@/table.parquet", "label": "y", **data})


INF, NAN = float("inf"), float("nan")
BOMB = "".join([
    'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n',
    *(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)),
])

# (id, file content, the field the one error line must name)
CASES = [
    # --- the YAML itself ---------------------------------------------------------------------------------------
    ("empty-file", "", "config"),
    ("only-comments", "# nothing here\n", "config"),
    ("top-level-list", "- name: corpus\n- seed: 0\n", "config"),
    ("top-level-scalar", "just a string\n", "config"),
    ("tab-indentation", BASE_TEXT.replace("  lr:", "\tlr:", 1), "config"),
    ("binary-junk", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfd", "config"),
    ("nul-character", BASE_TEXT + "note: a\x00b\n", "config"),
    ("unclosed-flow", BASE_TEXT + "budget: {trials: 4\n", "config"),
    ("two-documents", BASE_TEXT + "---\nname: other\n", "config"),
    ("huge-file", BASE_TEXT + ("# padding padding padding padding padding padding padding\n" * 20_000), "config"),
    ("duplicate-top-level-key", BASE_TEXT + "seed: 1\n", "seed"),
    ("duplicate-section", BASE_TEXT + "budget: {trials: 9}\n", "budget"),
    ("duplicate-nested-key", BASE_TEXT.replace("trials: 4", "trials: 4\n  trials: 40"), "budget.trials"),
    ("duplicate-in-flow-mapping", with_(budget=None) + "budget: {trials: 4, trials: 5}\n", "budget.trials"),
    ("duplicate-space-bound", BASE_TEXT.replace("low: 0.001", "low: 0.001\n    low: 0.002"), "space.lr.low"),
    ("duplicate-in-list-item", BASE_TEXT + "faults: [{trials: [1], trials: [2], slow: 2}]\n", "faults[0].trials"),
    ("duplicate-bool-keys", BASE_TEXT + "tolerance: {fail_fast: true, fail_fast: false}\n", "tolerance.fail_fast"),
    ("alias-bomb", BASE_TEXT + BOMB, "l0"),
    ("inline-merge-key", BASE_TEXT + "extra:\n  <<: {a: 1}\n", "extra"),
    ("anchor-and-merge", BASE_TEXT.replace("budget:", "budget: &b") + "extra:\n  <<: *b\n", "budget"),
    ("alias-only", BASE_TEXT + "copy: *undefined\n", "copy"),
    ("python-object-tag", BASE_TEXT + "trainer2: !!python/object/apply:os.system [echo hi]\n", "trainer2"),
    ("local-tag", with_(seed=None) + "seed: !secret 1\n", "seed"),
    ("deep-nesting", BASE_TEXT + "deep: " + "[" * 40 + "]" * 40 + "\n", "deep" + "[0]" * 20),
    ("integer-of-5000-digits", with_(budget=None) + "budget: {trials: " + "9" * 5000 + "}\n", "budget.trials"),
    ("impossible-date", with_(seed=None) + "seed: 2024-13-45\n", "seed"),
    # --- top level -----------------------------------------------------------------------------------------------
    ("unknown-key", with_(colour="red"), "colour"),
    ("unknown-key-with-newline", BASE_TEXT + '"colo\\nur": red\n', "'colo\\nur'"),
    ("name-with-slash", with_(name="a/b"), "name"),
    ("name-dotdot", with_(name=".."), "name"),
    ("name-with-dotdot", with_(name="a..b"), "name"),
    ("name-absolute", with_(name="/etc/passwd"), "name"),
    ("name-trailing-newline", with_(name="corpus\n"), "name"),
    ("name-backslash", with_(name="a\\b"), "name"),
    ("name-too-long", with_(name="x" * 200), "name"),
    ("name-not-a-string", with_(name=123), "name"),
    ("seed-negative", with_(seed=-1), "seed"),
    ("seed-inf", with_(seed=INF), "seed"),
    ("seed-2-to-64", with_(seed=2**64), "seed"),
    ("seed-bool", with_(seed=True), "seed"),
    ("trainer-unknown", with_(trainer="resnet"), "trainer"),
    ("trainer-relative-module", with_(trainer=".x:train"), "trainer"),
    ("deterministic-not-bool", with_(deterministic="maybe"), "deterministic"),
    # --- data ----------------------------------------------------------------------------------------------------
    ("data-not-a-mapping", with_(data=["mnist1d"]), "data"),
    ("data-source-unknown", with_(data__source="csv"), "data.source"),
    ("data-unknown-key", with_(data__rows=10), "data.rows"),
    ("num-samples-absurd", with_(data__num_samples=10**9), "data.num_samples"),
    ("num-samples-nan", with_(data__num_samples=NAN), "data.num_samples"),
    ("validation-fraction-one", with_(data__validation_fraction=1.0), "data.validation_fraction"),
    ("validation-fraction-nan", with_(data__validation_fraction=NAN), "data.validation_fraction"),
    ("split-seed-inf", with_(data__split_seed=INF), "data.split_seed"),
    ("parquet-missing-file", with_(data={"source": "parquet", "path": "@DIR@/none.parquet", "label": "y"}),
     "data.path"),
    ("parquet-not-parquet", parquet(path="@DIR@/text.parquet"), "data.path"),
    ("parquet-empty-file", parquet(path="@DIR@/empty.parquet"), "data.path"),
    ("parquet-no-rows", parquet(path="@DIR@/norows.parquet"), "data.path"),
    ("parquet-label-missing", parquet(label="target"), "data.label"),
    ("parquet-label-nested", parquet(path="@DIR@/nested.parquet"), "data.label"),
    ("parquet-feature-missing", parquet(features=["a", "zz"]), "data.features"),
    ("parquet-feature-text", parquet(features=["a", "colour"]), "data.features"),
    ("parquet-all-columns-text", parquet(path="@DIR@/text_feature.parquet"), "data.features"),
    ("parquet-features-include-label", parquet(features=["a", "y"]), "data.features"),
    ("parquet-only-label", parquet(path="@DIR@/only_label.parquet"), "data.features"),
    # --- space ---------------------------------------------------------------------------------------------------
    ("space-missing", with_(space=None), "space"),
    ("space-empty", with_(space={}), "space"),
    ("space-list", with_(space=["lr"]), "space"),
    ("float-low-inf", with_(space__lr={"type": "float", "low": -INF, "high": 0.1}), "space.lr.low"),
    ("float-high-nan", with_(space__lr={"type": "float", "low": 0.001, "high": NAN}), "space.lr.high"),
    ("float-step-inf", with_(space__lr={"type": "float", "low": 0.001, "high": 0.1, "step": INF}), "space.lr.step"),
    ("float-low-400-digit-int", with_(space__lr={"type": "float", "low": -10**400, "high": 0.1}), "space.lr.low"),
    ("int-bound-2-to-60", with_(space__width={"type": "int", "low": 16, "high": 2**60}), "space.width.high"),
    ("categorical-nan", with_(space__width={"type": "categorical", "choices": [16, NAN]}), "space.width.choices"),
    ("constant-inf", with_(space__batch_size=INF), "space.batch_size.value"),
    ("param-name-newline", BASE_TEXT.replace("  batch_size: 64", '  "batch_size\\n": 64'), "space.'batch_size\\n'"),
    ("param-type-unknown", with_(space__lr={"type": "double", "low": 0, "high": 1}), "space.lr.type"),
    ("epochs-over-max", with_(space__epochs=9), "space.epochs"),
    ("epochs-absurd", with_(space__epochs=10**9), "space.epochs"),
    # --- metric, searcher, scheduler -----------------------------------------------------------------------------
    ("metric-unreported", with_(metric={"name": "val_f1", "mode": "max"}), "metric.name"),
    ("metric-mode", with_(metric__mode="up"), "metric.mode"),
    ("searcher-unknown", with_(searcher="bayes"), "searcher.type"),
    ("startup-trials-absurd", with_(searcher__n_startup_trials=10**9), "searcher.n_startup_trials"),
    ("population-inf", with_(searcher={"type": "evolution", "population_size": INF}), "searcher.population_size"),
    ("reduction-factor-inf", with_(scheduler__reduction_factor=INF), "scheduler.reduction_factor"),
    ("reduction-factor-nan", with_(scheduler__reduction_factor=NAN), "scheduler.reduction_factor"),
    ("max-epochs-absurd", with_(scheduler__max_epochs=10**7), "scheduler.max_epochs"),
    ("grace-over-max", with_(scheduler__grace_period=9), "scheduler.grace_period"),
    ("scheduler-unknown-key", with_(scheduler__eta=3), "scheduler.eta"),
    # --- budget, resources -------------------------------------------------------------------------------------
    ("trials-zero", with_(budget__trials=0), "budget.trials"),
    ("trials-absurd", with_(budget__trials=10**9), "budget.trials"),
    ("trials-float", with_(budget__trials=1e3), "budget.trials"),
    ("max-concurrent-absurd", with_(budget__max_concurrent=10**6), "budget.max_concurrent"),
    ("time-budget-inf", with_(budget__time_budget_s=INF), "budget.time_budget_s"),
    ("time-budget-negative", with_(budget__time_budget_s=-1), "budget.time_budget_s"),
    ("cpus-inf", with_(resources__cpus=INF), "resources.cpus"),
    ("cpus-400-digit-int", with_(resources__cpus=10**400), "resources.cpus"),
    ("gpus-nan", with_(resources__gpus=NAN), "resources.gpus"),
    ("gpus-absurd", with_(resources__gpus=1000), "resources.gpus"),
    ("custom-resource-inf", with_(resources__custom={"accel": INF}), "resources.custom.accel"),
    ("custom-resource-cpu", with_(resources__custom={"CPU": 1}), "resources.custom.CPU"),
    # --- tracking ----------------------------------------------------------------------------------------------
    ("uri-ftp", with_(tracking={"uri": "ftp://mlflow.example.com/runs"}), "tracking.uri"),
    ("uri-s3-with-credentials", with_(tracking={"uri": "s3://user:pw@bucket/runs"}), "tracking.uri"),
    ("uri-host-without-scheme", with_(tracking={"uri": "localhost:5000"}), "tracking.uri"),
    ("uri-http-without-host", with_(tracking={"uri": "http://"}), "tracking.uri"),
    ("uri-unity-catalog", with_(tracking={"uri": "databricks-uc"}), "tracking.uri"),
    ("uri-bad-driver", with_(tracking={"uri": "sqlite+a+b:///x.db"}), "tracking.uri"),
    ("uri-empty", with_(tracking={"uri": ""}), "tracking.uri"),
    ("uri-number", with_(tracking={"uri": 5000}), "tracking.uri"),
    ("uri-newline", with_(tracking={"uri": "sqlite:///x.db\n"}), "tracking.uri"),
    ("tracking-unknown-key", with_(tracking={"url": "http://x"}), "tracking.url"),
    # --- constraints, reproducible, tolerance, faults ------------------------------------------------------------
    ("constraint-inf", with_(constraints={"params": {"max": INF}}), "constraints.params.max"),
    ("constraint-min-over-max", with_(constraints={"params": {"min": 9, "max": 1}}), "constraints.params"),
    ("constraint-unreported", with_(constraints={"paramz": {"max": 1}}), "constraints.paramz"),
    ("generation-size-absurd", with_(reproducible={"mode": "strict", "generation_size": 10**9}),
     "reproducible.generation_size"),
    ("reproducible-mode", with_(reproducible="sometimes"), "reproducible.mode"),
    ("stall-timeout-inf", with_(tolerance={"stall_timeout_s": INF}), "tolerance.stall_timeout_s"),
    ("stall-timeout-overflow", with_(tolerance={"stall_timeout_s": 1e300}), "tolerance.stall_timeout_s"),
    ("max-retries-absurd", with_(tolerance={"max_retries": 10**6}), "tolerance.max_retries"),
    ("straggler-factor-nan", with_(tolerance={"straggler_factor": NAN}), "tolerance.straggler_factor"),
    ("fail-fast-text", with_(tolerance={"fail_fast": "sometimes"}), "tolerance.fail_fast"),
    ("faults-mapping", with_(faults={"trials": [1], "slow": 2}), "faults"),
    ("fault-slow-inf", with_(faults=[{"trials": [1], "slow": INF}]), "faults[0].slow"),
    ("fault-trial-absurd", with_(faults=[{"trials": [10**9], "slow": 2}]), "faults[0].trials"),
    ("fault-two-selectors", with_(faults=[{"trials": [1], "fraction": 0.5, "slow": 2}]), "faults[0]"),
]


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    """Parquet files, one per way a table can disagree with its data section (and one that agrees)."""
    folder = tmp_path_factory.mktemp("tables")
    good = {"a": [0.1, 0.2, 0.3, 0.4], "b": [1, 2, 3, 4], "colour": ["r", "g", "b", "r"], "y": [0, 1, 0, 1]}
    pq.write_table(pa.table(good), folder / "table.parquet")
    pq.write_table(pa.table({"a": [0.1, 0.2], "colour": ["r", "g"], "y": [0, 1]}), folder / "text_feature.parquet")
    pq.write_table(pa.table({"a": pa.array([], pa.float64()), "y": pa.array([], pa.int64())}),
                   folder / "norows.parquet")
    pq.write_table(pa.table({"a": [0.1, 0.2], "y": [[0], [1]]}), folder / "nested.parquet")
    pq.write_table(pa.table({"y": [0, 1]}), folder / "only_label.parquet")
    (folder / "text.parquet").write_text("a,b,y\n1,2,0\n")
    (folder / "empty.parquet").write_bytes(b"")
    return folder


@pytest.fixture
def no_ray(monkeypatch):
    """Ray is out of bounds: any use of the Ray adapter fails the test (as exit 1, never the expected 2)."""
    forbid_ray_adapter(monkeypatch, "the config passed validation and the run went on")


def _write(tmp_path: Path, content: str | bytes, tables: Path) -> Path:
    path = tmp_path / "exp.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content.replace("@DIR@", str(tables)))
    return path


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _one_error_line(capsys, field: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"hypernas: error: {field}: "), lines[0]
    assert captured.out == ""
    return lines[0]


def test_the_corpus_is_large_and_covers_every_section():
    assert len(CASES) >= 60 and len({case_id for case_id, _, _ in CASES}) == len(CASES)
    sections = {field.split(".")[0].split("[")[0] for _, _, field in CASES}
    assert {"config", "name", "seed", "trainer", "deterministic", "data", "space", "metric", "searcher", "scheduler",
            "budget", "resources", "tracking", "constraints", "reproducible", "tolerance", "faults"} <= sections


@pytest.mark.parametrize("content, field", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_config_is_bad_input_everywhere(tmp_path, tables, monkeypatch, capsys, no_ray, content, field):
    config = _write(tmp_path, content, tables)
    store = tmp_path / "tracking.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    workdir = tmp_path / "work"
    before = _tree(tmp_path)

    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert info.value.path == field and "\n" not in str(info.value)

    assert main(["validate", str(config), "--workdir", str(workdir)]) == 2
    validate_line = _one_error_line(capsys, field)
    assert main(["run", str(config), "--workdir", str(workdir)]) == 2
    assert _one_error_line(capsys, field) == validate_line

    assert _tree(tmp_path) == before and not workdir.exists() and not store.exists()


def test_credentials_in_an_unsupported_uri_are_not_echoed(tmp_path, capsys):
    config = _write(tmp_path, with_(tracking={"uri": "ftp://alice:hunter2@files.example.com/runs"}), tmp_path)
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "scheme 'ftp'" in err and "hunter2" not in err and "alice" not in err


def test_a_python_dict_sharing_one_list_a_billion_times_is_refused_before_it_is_copied():
    leaf: list = ["lol"] * 10
    for _ in range(8):
        leaf = [leaf] * 10  # 10**9 strings by reference, a few kB in memory
    with pytest.raises(ConfigError) as info:
        load_config({**BASE, "space": {**BASE["space"], "junk": leaf}})
    assert info.value.path == "config" and "more than 100_000 values" in str(info.value)


def test_load_config_refuses_what_is_not_a_config():
    for source in (None, 42, b"name: x"):
        with pytest.raises(ConfigError) as info:
            load_config(source)
        assert info.value.path == "config"


# --- what stays valid ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", [
    "sqlite:///tmp/mlflow.db", "file:///tmp/mlruns", "/tmp/mlruns", "mlruns", "http://127.0.0.1:5000",
    "https://mlflow.example.com", "https://user:token@mlflow.example.com", "databricks", "databricks://profile",
    "postgresql://mlflow@db.example.com/mlflow", "postgresql+psycopg2://db.example.com/mlflow",
    "mysql+pymysql://db.example.com/mlflow", "mssql+pyodbc://db.example.com/mlflow",
])
def test_tracking_uris_mlflow_supports_are_accepted(uri):
    assert load_config(yaml.safe_load(with_(tracking={"uri": uri}))).tracking.uri == uri


def test_allowed_tracking_schemes_are_the_ones_mlflow_registers():
    """MLflow's own registry of tracking stores, less the Unity Catalog schemes it registers only to refuse."""
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    from search.config import TRACKING_SCHEMES

    registered = {scheme for scheme, builder in _tracking_store_registry._registry.items()
                  if builder.__module__.startswith("mlflow.")} - {"databricks-uc", "uc"}
    assert registered == {"", *TRACKING_SCHEMES}


def test_sizes_at_their_maxima_are_accepted():
    from search import config as c

    cfg = load_config(yaml.safe_load(with_(
        data__num_samples=c.MAX_NUM_SAMPLES, budget={"trials": c.MAX_TRIALS, "max_concurrent": c.MAX_CONCURRENT,
                                                     "time_budget_s": c.MAX_SECONDS},
        scheduler={"type": "asha", "max_epochs": c.MAX_EPOCHS, "reduction_factor": c.MAX_FACTOR},
        resources={"cpus": c.MAX_CPUS, "gpus": c.MAX_GPUS}, seed=c.MAX_SEED,
        tolerance={"stall_timeout_s": c.MAX_SECONDS, "max_retries": c.MAX_RETRIES},
    )))
    assert cfg.data.num_samples == 1_000_000 and cfg.budget.trials == c.MAX_TRIALS and cfg.seed == 2**63 - 1
    with pytest.raises(ConfigError, match=r"data.num_samples: must be an integer >= 100 and <= 1_000_000 "
                                          r"\(got 1000001\)"):
        load_config(yaml.safe_load(with_(data__num_samples=c.MAX_NUM_SAMPLES + 1)))


def test_a_parquet_table_that_matches_its_data_section_validates(tables, tmp_path, capsys):
    config = _write(tmp_path, parquet(features=["a", "b"]), tables)
    assert main(["validate", str(config)]) == 0
    assert "source: parquet" in capsys.readouterr().out
    assert load_config(config).data.features == ("a", "b")
    assert load_config(_write(tmp_path, parquet(path="@DIR@/text_feature.parquet", features=["a"]), tables))


def test_yaml_this_project_writes_reads_back():
    from spaces import dump_yaml, load_yaml

    shared = [1, 2]
    text = dump_yaml({"a": shared, "b": shared, "lr": 1e-4})
    assert "&" not in text and load_yaml(text) == {"a": [1, 2], "b": [1, 2], "lr": 1e-4}
    cfg = load_config(yaml.safe_load(BASE_TEXT))
    assert load_config(load_yaml(cfg.to_yaml())) == cfg


def test_an_unsupported_tracking_uri_from_the_environment_stops_run_before_ray(tmp_path, monkeypatch, capsys, no_ray):
    config = _write(tmp_path, with_(), tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "ftp://alice:hunter2@files.example.com/runs")
    before = _tree(tmp_path)
    assert main(["run", str(config), "--workdir", str(tmp_path / "work")]) == 2
    line = _one_error_line(capsys, "MLFLOW_TRACKING_URI")
    assert "scheme 'ftp'" in line and "hunter2" not in line
    assert _tree(tmp_path) == before
