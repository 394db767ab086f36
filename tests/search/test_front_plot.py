"""The Pareto front drawn and measured with Optuna (search._optuna.front): real matplotlib, real Optuna."""

from __future__ import annotations

import pytest

from search._optuna.front import front_hypervolume, plot_front, reference_point
from search.pareto import Objective, pareto_rows

THREE = [Objective("val_accuracy", "max"), Objective("energy_j", "min"), Objective("latency_ms", "min")]


def _rows(objectives=THREE):
    values = [(0.9, 100.0, 2.0), (0.95, 300.0, 1.0), (0.97, 900.0, 3.0), (0.8, 50.0, 5.0), (0.85, 400.0, 4.0)]
    rows = [{"number": n, "state": "COMPLETE", "feasible": True, "phase": None,
             "objective_values": dict(zip([o.name for o in THREE], v))} for n, v in enumerate(values)]
    rows.append({"number": 5, "state": "PRUNED", "feasible": True, "phase": None,
                 "objective_values": {"val_accuracy": 0.1}})  # never drawn: it has no final values
    front = {r["number"] for r in pareto_rows(rows, objectives)}
    return [{**r, "pareto": r["number"] in front} for r in rows]


def test_more_than_two_objectives_give_one_picture_per_pair(tmp_path):
    paths = plot_front(_rows(), THREE, tmp_path, title="three")
    assert sorted(p.name for p in paths) == [
        "pareto_front_energy_j_vs_latency_ms.png", "pareto_front_val_accuracy_vs_energy_j.png",
        "pareto_front_val_accuracy_vs_latency_ms.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_two_objectives_give_one_picture(tmp_path):
    assert [p.name for p in plot_front(_rows(THREE[:2]), THREE[:2], tmp_path)] == ["pareto_front.png"]


def test_hypervolume_is_optunas_exact_value():
    two = THREE[:2]
    rows = _rows(two)
    assert {r["number"] for r in rows if r["pareto"]} == {0, 1, 2, 3}  # trial 4 (0.85, 400 J) is dominated by 1
    # the front as losses (-accuracy, energy), sorted by the first; up to the reference it is a union of boxes,
    # each reaching right to the next point's first loss (the last to the reference)
    reference = [-0.7, 1000.0]
    points = [(-0.97, 900.0), (-0.95, 300.0), (-0.9, 100.0), (-0.8, 50.0)]
    rights = [p[0] for p in points[1:]] + [reference[0]]
    area = sum((right - x) * (reference[1] - y) for (x, y), right in zip(points, rights))
    assert front_hypervolume(rows, two, reference) == pytest.approx(area)
    default = reference_point(rows, two)
    assert default[0] > -0.8 and default[1] > 900.0  # beyond every COMPLETE trial's loss
