import pytest

from search.config import ConfigError, ExperimentConfig, apply_overrides, load_config
from tests.helpers import tiny_config


def test_defaults_resolve_and_round_trip():
    cfg = load_config(tiny_config())
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.scheduler.max_epochs == 4 and cfg.budget.max_concurrent == 2 and cfg.metric.mode == "max"
    assert load_config(cfg) == cfg
    assert load_config(cfg.to_dict()) == cfg
    assert cfg.epochs_for({}) == 4 and cfg.epochs_for({"epochs": 2}) == 2


def test_yaml_file_name_is_the_default_name(tmp_path):
    path = tmp_path / "my-exp.yaml"
    raw = tiny_config()
    raw.pop("name")
    import yaml
    path.write_text(yaml.safe_dump(raw))
    assert load_config(path).name == "my-exp"
    assert load_config(path, name="other", seed=9).name == "other"
    assert load_config(path, seed=9).seed == 9


def test_overrides_parse_yaml_values_and_create_sections():
    raw = apply_overrides({"a": {"b": 1}}, ["a.b=2", "c.d=1e-3", "e=[x, y]"])
    assert raw == {"a": {"b": 2}, "c": {"d": 0.001}, "e": ["x", "y"]}
    cfg = load_config(tiny_config(), overrides=["budget.trials=3", "space.lr.high=0.1", "searcher=random"])
    assert cfg.budget.trials == 3 and cfg.space["lr"].high == 0.1 and cfg.searcher.type == "random"


BAD = [
    (["budget.trials=0"], "budget.trials", "integer >= 1"),
    (["budget.trials=ten"], "budget.trials", "integer >= 1"),
    (["budget.max_concurrent=0"], "budget.max_concurrent", "integer >= 1"),
    (["budget.time_budget_s=-5"], "budget.time_budget_s", "number > 0"),
    (["space.lr.low=1"], "space.lr.low", "low < high"),
    (["space.lr.low=0"], "space.lr.low", "low > 0"),
    (["space.widht=3"], "space.widht", "not a hyperparameter"),
    (["space.optimizer={type: categorical, choices: [adamw, sgd, lion]}"], "space.optimizer", "must be one of"),
    (["trainer=resnet"], "trainer", "unknown trainer 'resnet'"),
    (["trainer=nomodule:train"], "trainer", "cannot import module"),
    (["searcher=bayes"], "searcher.type", "must be one of tpe, random, cmaes, grid"),
    (["searcher=grid"], "space.lr", "grid search needs finite values"),
    (["scheduler=pbt"], "scheduler.type", "must be one of asha, hyperband, median, none"),
    (["scheduler.grace_period=9"], "scheduler.grace_period", "grace_period <= max_epochs"),
    (["scheduler.reduction_factor=1"], "scheduler.reduction_factor", "number > 1"),
    (["scheduler.brackets=2"], "scheduler.brackets", "unknown setting"),
    (["scheduler.promotion=fifo"], "scheduler.promotion", "must be one of async, ordered"),
    (["scheduler={type: median, promotion: ordered}"], "scheduler.promotion", "unknown setting"),
    (["scheduler=hyperband"], "budget.max_concurrent", "cannot be combined with scheduler hyperband"),
    (["space.epochs=9"], "space.epochs", "epochs <= scheduler.max_epochs"),
    (["tolerance.stall_timeout_s=0"], "tolerance.stall_timeout_s", "number > 0"),
    (["tolerance.max_retries=-1"], "tolerance.max_retries", "integer >= 0"),
    (["tolerance.straggler_factor=1"], "tolerance.straggler_factor", "number > 1"),
    (["faults=[{trials: [1]}]"], "faults[0]", "exactly one of hang_at_epoch, raise_at_epoch, slow"),
    (["faults=[{trials: [1], fraction: 0.5, slow: 2}]"], "faults[0]", "exactly one of trials, fraction, node_resource"),
    (["faults=[{trials: [1], slow: 0.5}]"], "faults[0].slow", "number > 1"),
    (["faults=[{fraction: 2, slow: 3}]"], "faults[0].fraction", "in (0, 1)"),
    (["faults=[{trials: [1], slow: 2, release_file: /tmp/go}]"], "faults[0].release_file",
     "only releases a hang_at_epoch drill"),
    (["faults=[{trials: [1], hang_at_epoch: 2, release_file: go}]"], "faults[0].release_file",
     "must be an absolute path"),
    (["faults={trials: [1]}"], "faults", "must be a list"),
    (["reproducible=sometimes"], "reproducible.mode", "must be one of async, strict"),
    (["reproducible=strict", "scheduler=median"], "reproducible.mode", "strict mode works with scheduler asha"),
    (["space.epochs={type: float, low: 1, high: 2}"], "space.epochs", "integer constant or an int"),
    (["metric=val_f1"], "metric.name", "does not report 'val_f1'"),
    (["metric.mode=up"], "metric.mode", "must be one of max, min"),
    (["resources.cpus=0"], "resources.cpus", "number > 0"),
    (["resources.gpus=-1"], "resources.gpus", "number >= 0"),
    (["data.source=csv"], "data.source", "must be one of mnist1d, digits, parquet"),
    (["data.num_samples=5"], "data.num_samples", "integer >= 100"),
    (["data.validation_fraction=1.5"], "data.validation_fraction", "in (0, 1)"),
    (["data.source=parquet"], "data.path", "is required"),
    (["data.source=parquet", "data.path=/no/such.parquet", "data.label=y"], "data.path", "no such file"),
    (["seed=-1"], "seed", "integer >= 0"),
    (["seed=1.5"], "seed", "integer >= 0"),
    (["name=a/b"], "name", "letters, digits"),
    (["deterministic=maybe"], "deterministic", "true or false"),
    (["tracking.url=x"], "tracking.url", "unknown setting"),
    (["colour=red"], "colour", "unknown setting"),
    (["space=[]"], "space", "must map parameter names"),
    (["budget=5"], "budget", "must be a mapping"),
]


@pytest.mark.parametrize("overrides, path, rule", BAD, ids=[b[0][-1] for b in BAD])
def test_bad_input_names_the_field_and_the_rule(overrides, path, rule):
    with pytest.raises(ConfigError) as info:
        load_config(tiny_config(), overrides=overrides)
    assert info.value.path == path
    assert rule in str(info.value)
    assert str(info.value).startswith(f"{path}: ")


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config: no such file"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a YAML mapping"):
        load_config(listy)
    with pytest.raises(ConfigError, match="--set: expects key=value"):
        load_config(tiny_config(), overrides=["budget.trials"])


def test_nas_spaces_check_cells_against_the_op_registry():
    space = {"cell": {"type": "nb201_cell"}, "channels": {"type": "int", "low": 8, "high": 32, "log": True},
             "depth_multiplier": {"type": "float", "low": 0.5, "high": 2.0}}
    cfg = load_config(tiny_config(trainer="nas", space=space, searcher={"type": "evolution", "population_size": 8,
                                                                         "sample_size": 3}))
    assert cfg.searcher.to_dict() == {"type": "evolution", "population_size": 8, "sample_size": 3, "dedupe": True}
    bad = {**space, "cell": {"type": "nb201_cell", "ops": ["none", "conv_9x9"]}}
    with pytest.raises(ConfigError, match="space.cell: .*unknown op 'conv_9x9'"):
        load_config(tiny_config(trainer="nas", space=bad))
    with pytest.raises(ConfigError, match="space.lr: is not an architecture hyperparameter"):
        load_config(tiny_config(trainer="nas", space={"lr": {"type": "nb201_cell"}}))
    with pytest.raises(ConfigError, match="space.cell: takes a genotype"):
        load_config(tiny_config(trainer="nas", space={"cell": {"type": "int", "low": 1, "high": 3}}))
    with pytest.raises(ConfigError, match="searcher.sample_size: sample_size <= population_size"):
        load_config(tiny_config(trainer="nas", space=space,
                                searcher={"type": "evolution", "population_size": 3, "sample_size": 4}))
    with pytest.raises(ConfigError, match="constraints.paramz: trainer 'nas' does not report 'paramz'"):
        load_config(tiny_config(trainer="nas", space=space, constraints={"paramz": {"max": 1}}))
