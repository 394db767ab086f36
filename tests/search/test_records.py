import json

import pyarrow.parquet as pq

from search.records import TRIAL_COLUMNS, ExperimentRecords, final_state, pick_best, read_trials


def test_final_state_rules():
    assert final_state(5, 5, errored=False) == "COMPLETE"
    assert final_state(2, 5, errored=False) == "PRUNED"
    assert final_state(5, 5, errored=True) == "FAILED"


def test_best_is_complete_only_and_ties_go_to_the_lower_number():
    rows = [
        {"number": 0, "state": "PRUNED", "last_value": 0.99},
        {"number": 1, "state": "COMPLETE", "last_value": 0.90},
        {"number": 2, "state": "COMPLETE", "last_value": 0.95},
        {"number": 3, "state": "COMPLETE", "last_value": 0.95},
        {"number": 4, "state": "FAILED", "last_value": None},
    ]
    assert pick_best(rows, "max")["number"] == 2
    assert pick_best(rows, "min")["number"] == 1
    assert pick_best(rows[:1], "max") is None


def test_parquet_tables(tmp_path):
    records = ExperimentRecords("val_loss", "min")
    records.started(0, "a", 11, {"lr": 0.1, "opt": "sgd"}, 3)
    records.started(1, "b", 12, {"lr": 0.2, "opt": "adamw", "flag": True}, 3)
    for epoch, value in [(1, 0.9), (2, 0.5), (3, 0.7)]:
        records.result(0, epoch, {"val_loss": value, "val_accuracy": 1 - value}, "host/1.2.3.4")
    records.result(0, 3, {"val_loss": 0.6, "val_accuracy": 0.4}, "host/1.2.3.4")  # a resumed epoch replaces its row
    records.result(1, 1, {"val_loss": 0.8}, None)
    records.ended(0, "COMPLETE")
    records.ended(1, "PRUNED")
    trials_path, curves_path = records.write(tmp_path)
    table = pq.read_table(trials_path)
    assert tuple(table.column_names[: len(TRIAL_COLUMNS)]) == TRIAL_COLUMNS
    assert {"param_lr", "param_opt", "param_flag"} <= set(table.column_names)
    rows = read_trials(tmp_path)
    assert rows[0]["best_value"] == 0.5 and rows[0]["best_epoch"] == 2 and rows[0]["last_value"] == 0.6
    assert rows[0]["epochs_run"] == 3 and rows[0]["node"] == "host/1.2.3.4" and rows[1]["param_flag"] is True
    assert rows[1]["params"] == {"lr": 0.2, "opt": "adamw", "flag": True}
    assert json.loads(table.column("params")[0].as_py()) == {"lr": 0.1, "opt": "sgd"}
    curves = pq.read_table(curves_path).to_pylist()
    assert [(c["trial"], c["epoch"]) for c in curves] == [(0, 1), (0, 2), (0, 3), (1, 1)]
    assert curves[2]["val_loss"] == 0.6 and curves[3]["val_accuracy"] is None
    assert records.counts()["COMPLETE"] == 1 and records.best().number == 0


def test_a_straggler_is_judged_against_its_peers_not_itself():
    records = ExperimentRecords("val_loss", "min")
    walls = {0: [0.4, 0.4, 0.4], 1: [0.1, 0.1, 0.12], 2: [0.1, 0.12, 0.1], 3: [0.11]}  # trial 0: 4x slower
    for number, times in walls.items():
        records.started(number, f"t{number}", number, {}, 3)
        for epoch, wall in enumerate(times, start=1):
            records.result(number, epoch, {"val_loss": 0.5, "epoch_wall_s": wall}, None)
    ratios = records.straggler_ratios()
    # with three trials at epochs 2 and 3, a median that counted trial 0 itself would be 0.12: ratio 3.3, not 4
    assert ratios[0] > 3.5 and all(ratios[n] < 1.5 for n in (1, 2, 3))
    records.started(4, "t4", 4, {}, 3)
    records.result(4, 1, {"val_loss": 0.5}, None)  # no wall time reported: not judged
    assert 4 not in records.straggler_ratios()


def test_straggler_ratios_kept_as_results_arrive_are_those_of_every_curve_at_once():
    """The peers' times are kept sorted as results arrive (an epoch re-run replaces its time, a forgotten trial takes
    its times away, a one-shot search is judged among searches): at every point each trial's ratio is the one
    computed from scratch over every curve."""
    import random
    import statistics

    def from_scratch(records):
        by_epoch = {}
        for (trial, epoch), row in records.curves.items():
            by_epoch.setdefault((records.trials[trial].phase, epoch), []).append(row["epoch_wall_s"])
        ratios = {}
        for (trial, epoch), row in records.curves.items():
            times = by_epoch[records.trials[trial].phase, epoch]
            if len(times) >= 3:
                peers = list(times)
                peers.remove(row["epoch_wall_s"])
                ratios.setdefault(trial, []).append(row["epoch_wall_s"] / max(statistics.median(peers), 1e-9))
        return {trial: statistics.median(values) for trial, values in ratios.items()}

    rng = random.Random(7)
    records = ExperimentRecords("val_loss", "min")
    for number in range(40):
        records.started(number, f"t{number}", number, {}, 6, phase="search" if number % 5 == 0 else None)
    checked = 0
    for _ in range(600):
        number = rng.randrange(40)
        if number not in records.trials:
            continue
        if rng.random() < 0.01:
            records.journal.append("forget", number=number)
        else:  # epochs in order, sometimes one again (a restart), with ties
            epoch = max(1, records.trials[number].epochs_run + rng.choice([0, 1, 1, 1]))
            records.result(number, min(epoch, 6), {"val_loss": 0.5, "epoch_wall_s": rng.choice([0.1, 0.2, 0.25,
                                                                                          rng.random()])}, None)
        assert records.straggler_ratios() == from_scratch(records)
        checked += 1
    assert checked > 500 and len(records.straggler_ratios()) > 20
