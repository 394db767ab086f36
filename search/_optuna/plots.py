"""Optuna's own plots over an experiment's study (``optuna.journal``): parallel coordinates of the parameters against
the first objective, and the parameters' importances (``optuna.importance``, fANOVA with a fixed seed so the same
study gives the same picture). PNG plus the data behind each, into the experiment's ``plots/`` folder."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.importance import BaseImportanceEvaluator, FanovaImportanceEvaluator, get_param_importances
from optuna.trial import TrialState

from search._optuna import load_study


class _Computed(BaseImportanceEvaluator):
    """An importance evaluator that answers with importances already computed (for the same study and target)."""

    def __init__(self, importances: dict[str, float]) -> None:
        self.importances = dict(importances)

    def evaluate(self, study: optuna.Study, params: list[str] | None = None, *, target: Any = None) -> dict[str, float]:
        return {name: value for name, value in self.importances.items() if params is None or name in params}


def _target(study: optuna.Study) -> Any:
    """The value plotted: the study's one objective, or the first of several (the one early stopping watches)."""
    return (lambda trial: trial.values[0]) if len(study.directions) > 1 else None


def study_plots(study_file: Path, name: str, metric: str, out: Path, notes: list[str]) -> list[Path]:
    """``parallel_coordinates.png`` and ``param_importances.png`` (+ ``param_importances.json``) for study
    ``name``; each skipped with a note when the study cannot support it (fewer than two COMPLETE trials, no
    parameter that varies)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_param_importances, plot_parallel_coordinate

    study = load_study(study_file, name)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        notes.append(f"parallel coordinates, importances: {len(complete)} COMPLETE trial(s); they need two or more")
        return []
    target = _target(study)
    paths = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)  # matplotlib: a constant axis gets widened
        ax = plot_parallel_coordinate(study, target=target, target_name=metric)
        ax.figure.set_size_inches(10, 5)
        ax.figure.tight_layout()
        ax.figure.savefig(out / "parallel_coordinates.png", dpi=110)
        plt.close(ax.figure)
        paths.append(out / "parallel_coordinates.png")
        try:
            importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0), target=target)
        except (RuntimeError, ValueError) as err:  # e.g. no parameter varies over the COMPLETE trials
            notes.append(f"importances: not computed ({err})")
            return paths
        (out / "param_importances.json").write_text(json.dumps({"target": metric, "evaluator": "fANOVA (seed 0)",
                                                                "importances": importances}, indent=2))
        # Optuna's bar chart of the importances just computed (fANOVA's forest is the costly part: fitted once)
        ax = plot_param_importances(study, evaluator=_Computed(importances), target=target, target_name=metric)
        ax.figure.tight_layout()
        ax.figure.savefig(out / "param_importances.png", dpi=110)
        plt.close(ax.figure)
    return [*paths, out / "param_importances.json", out / "param_importances.png"]
