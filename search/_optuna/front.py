"""The Pareto front drawn and measured with Optuna: a scatter of the objectives with the front marked
(``optuna.visualization.matplotlib.plot_pareto_front``; one picture per pair of objectives beyond two) and its
hypervolume. The front itself comes from the records (:mod:`search.pareto`); here an in-memory study holds the
COMPLETE trials so Optuna's plots can draw them.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import optuna
from optuna.trial import TrialState, create_trial

from search._optuna import CONSTRAINTS_ATTR, _stored_constraints
from search._optuna._optuna_internals import hypervolume
from search.pareto import Objective, eligible


def _complete(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]) -> list[Mapping[str, Any]]:
    """COMPLETE trials (not supernet searches) with a finite value of every objective: those a front plot shows."""
    from search.config import SEARCH_PHASE

    return [row for row in rows if row["state"] == "COMPLETE" and row.get("phase") != SEARCH_PHASE
            and all(np.isfinite(row["objective_values"].get(o.name, np.nan)) for o in objectives)]


def front_study(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]) -> optuna.Study:
    """An in-memory study of the COMPLETE trials' objective values; an infeasible trial carries a violated
    constraint (Optuna's plots grey it out and leave it off the front)."""
    study = optuna.create_study(directions=["maximize" if o.mode == "max" else "minimize" for o in objectives])
    study.add_trials([create_trial(
        state=TrialState.COMPLETE, values=[float(row["objective_values"][o.name]) for o in objectives],
        user_attrs={"hypernas_trial": row["number"]},
        system_attrs={CONSTRAINTS_ATTR: [0.0 if eligible(row) else 1.0]},
    ) for row in _complete(rows, objectives)])
    return study


def plot_front(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective], folder: Path,
               title: str = "") -> list[Path]:
    """``pareto_front.png`` (two objectives) or ``pareto_front_<a>_vs_<b>.png`` per pair (more): every COMPLETE
    trial, the front's points highlighted and joined by the staircase they dominate. Empty when nothing is
    complete."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_pareto_front

    study = front_study(rows, objectives)
    if not study.trials:
        return []
    front = [row for row in rows if row.get("pareto")]
    pairs = list(itertools.combinations(range(len(objectives)), 2))
    paths = []
    for i, j in pairs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ax = plot_pareto_front(study, target_names=[objectives[i].name, objectives[j].name],
                                   targets=lambda t, i=i, j=j: (t.values[i], t.values[j]),
                                   constraints_func=_stored_constraints)
        points = sorted((row["objective_values"][objectives[i].name], row["objective_values"][objectives[j].name])
                        for row in front)
        if len(objectives) == 2 and points:
            # the staircase the front dominates, from its best point in the first objective to its best in the second
            xs, ys = zip(*points)
            # the outline of the region the front dominates: a point's box reaches towards the worse x values
            ax.plot(xs, ys, drawstyle="steps-post" if objectives[0].mode == "min" else "steps-pre",
                    color="tab:red", linewidth=1, alpha=0.7, label="Pareto front")
        for row in front:
            ax.annotate(str(row["number"]), (row["objective_values"][objectives[i].name],
                                             row["objective_values"][objectives[j].name]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title((f"{title}: " if title else "") + f"Pareto front ({len(front)} of {len(study.trials)} trials)")
        name = "pareto_front.png" if len(pairs) == 1 else \
            f"pareto_front_{objectives[i].name}_vs_{objectives[j].name}.png"
        ax.figure.tight_layout()
        ax.figure.savefig(folder / name, dpi=120)
        plt.close(ax.figure)
        paths.append(folder / name)
    return paths


def reference_point(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]) -> list[float]:
    """A default hypervolume reference: each objective's worst value over the COMPLETE trials, as a loss, pushed
    10 % of the range (at least 1e-9) beyond it — so every point counts."""
    losses = np.array([[o.loss(row["objective_values"][o.name]) for o in objectives]
                       for row in _complete(rows, objectives)])
    worst, best = losses.max(axis=0), losses.min(axis=0)
    return list(worst + np.maximum(0.1 * (worst - best), 1e-9))


def front_hypervolume(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective],
                      reference: Sequence[float] | None = None) -> float:
    """Hypervolume of the front's points (every objective as a loss) up to ``reference`` (default:
    :func:`reference_point`)."""
    front = [row for row in rows if row.get("pareto")]
    if not front:
        return 0.0
    losses = np.array([[o.loss(row["objective_values"][o.name]) for o in objectives] for row in front])
    ref = np.asarray(reference if reference is not None else reference_point(rows, objectives), dtype=float)
    return hypervolume(losses, ref)
