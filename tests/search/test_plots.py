"""The experiment's pictures (search.plots): real matplotlib and networkx over real records; the data files behind
each picture hold what it shows."""

from __future__ import annotations

import csv

from search.plots import best_so_far, learning_curves, winning_cell
from search.records import ExperimentRecords


def _records() -> ExperimentRecords:
    records = ExperimentRecords("val_accuracy", "max")
    for number, values, end in ((0, [0.5, 0.7, 0.8], None), (1, [0.4], "PRUNED"), (2, [0.6, 0.9, 0.95], None)):
        records.started(number, f"t{number}", number, {"lr": 0.1}, 3, at=100.0 + number)
        for epoch, value in enumerate(values, 1):
            records.result(number, epoch, {"val_accuracy": value}, None, at=100.0 + number + epoch)
        records.ended(number, at=110.0 + number)
    return records


def test_learning_curves_hold_every_point_and_the_rung_decisions(tmp_path):
    decisions = [{"kind": "decision", "trial": 1, "epoch": 1, "rung": 1, "value": 0.4, "cutoff": 0.5,
                  "decision": "STOP"},
                 {"kind": "decision", "trial": 0, "epoch": 1, "rung": 1, "value": 0.5, "cutoff": 0.45,
                  "decision": "CONTINUE"},
                 {"kind": "decision", "trial": 0, "epoch": 2, "rung": None, "value": 0.7, "decision": "CONTINUE"}]
    paths = learning_curves(_records(), decisions, tmp_path)
    assert [p.name for p in paths] == ["learning_curves.png", "learning_curves.csv", "rungs.csv"]
    rows = list(csv.DictReader(paths[1].open()))
    assert len(rows) == 7 and {r["state"] for r in rows if r["trial"] == "1"} == {"PRUNED"}
    rungs = list(csv.DictReader(paths[2].open()))
    assert [(r["trial"], r["cutoff"], r["decision"]) for r in rungs] == [("1", "0.5", "STOP"), ("0", "0.45", "CONTINUE")]


def test_best_so_far_is_the_running_best_of_complete_trials_in_the_order_they_ended(tmp_path):
    paths = best_so_far(_records(), tmp_path)
    rows = list(csv.DictReader(paths[1].open()))
    assert [(r["trial"], float(r["best_so_far"])) for r in rows] == [("0", 0.8), ("2", 0.95)]  # 1 was pruned
    assert [float(r["wall_time_s"]) for r in rows] == [10.0, 12.0]


def test_a_darts_genotype_is_drawn_cell_by_cell(tmp_path):
    genotype = ("normal:|sep_conv_3x3~0|sep_conv_3x3~1|+|skip_connect~0|dil_conv_3x3~2| "
                "reduce:|max_pool_3x3~0|max_pool_3x3~1|+|none~1|avg_pool_3x3~2|")
    paths = winning_cell(genotype, tmp_path, "test")
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_text().strip() == genotype
