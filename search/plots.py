"""Pictures of an experiment, written as PNG with the data behind each (CSV or JSON) into ``<folder>/plots/`` and
uploaded to the parent run at the end of a run (``hypernas report`` draws them again):

* ``learning_curves`` — every trial's validation metric per epoch, coloured by how it ended, with the scheduler's
  rungs (dotted lines at their epochs) and each rung decision's cut-off (short black ticks) and stops (crosses);
* ``best_so_far`` — the best final value among the trials ended so far, against trials ended and against wall time;
* ``parallel_coordinates``, ``param_importances`` — Optuna's plots over the experiment's own study
  (:mod:`search._optuna.plots`; importances by ``optuna.importance``'s fANOVA, seeded);
* ``winning_cell`` — a NAS experiment's winning cell as a graph (networkx's layout, matplotlib's drawing);
* a multi-objective experiment's Pareto front comes from :func:`search._optuna.front.plot_front`.

A picture that cannot be drawn (too few trials, nothing varies) is skipped with a note; it never fails the run.
Matplotlib runs headless (Agg).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from search.records import ExperimentRecords

log = logging.getLogger(__name__)

PLOTS_DIR = "plots"  # under the experiment folder, and the artifact folder on the parent run
STATE_COLOURS = {"COMPLETE": "tab:green", "PRUNED": "tab:orange", "FAILED": "tab:red", "STALLED": "tab:purple",
                 "PREEMPTED": "tab:brown", "INTERRUPTED": "tab:gray", "RUNNING": "tab:blue"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    names = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    _pyplot().close(figure)
    return path


def learning_curves(records: ExperimentRecords, decisions: Iterable[Mapping[str, Any]], out: Path) -> list[Path]:
    """``learning_curves.png`` and its data: ``learning_curves.csv`` (trial, state, epoch, value) and
    ``rungs.csv`` (the scheduler's rung decisions: trial, epoch = the rung, value, cut-off, decision)."""
    rows = [{"trial": trial, "state": records.trials[trial].state, "epoch": epoch, "value": row.get(records.metric)}
            for (trial, epoch), row in sorted(records.curves.items()) if trial in records.trials]
    rows = [r for r in rows if isinstance(r["value"], (int, float)) and math.isfinite(r["value"])]
    if not rows:
        return []
    rungs = [{"trial": d["trial"], "epoch": d["rung"], "value": d.get("value"), "cutoff": d.get("cutoff"),
              "decision": d.get("decision")} for d in decisions if d.get("kind") == "decision" and d.get("rung")]
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(8, 5))
    for epoch in sorted({r["epoch"] for r in rungs}):
        ax.axvline(epoch, color="0.6", linestyle=":", linewidth=1)
    # one LineCollection per end state (one artist, not one per trial: thousands of trials draw in one go), in
    # the order the states first appear among the trials, as the legend lists them
    from matplotlib.collections import LineCollection

    curves: dict[int, list[tuple[int, float]]] = {}
    for r in rows:  # sorted by trial, then epoch
        curves.setdefault(r["trial"], []).append((r["epoch"], r["value"]))
    by_state: dict[str, list[list[tuple[int, float]]]] = {}
    for trial, points in curves.items():
        by_state.setdefault(records.trials[trial].state, []).append(points)
    for state, lines in by_state.items():
        colour = STATE_COLOURS.get(state, "k")
        ax.add_collection(LineCollection(lines, colors=colour, alpha=0.7, linewidths=1.2, label=state))
        dots = [point for line in lines if len(line) < 30 for point in line]
        if dots:  # short curves show their epochs as dots
            ax.plot([e for e, _ in dots], [v for _, v in dots], linestyle="none", marker=".", color=colour,
                    alpha=0.7)
    ax.autoscale_view()
    cut = [r for r in rungs if r["cutoff"] is not None]
    if cut:
        ax.scatter([r["epoch"] for r in cut], [r["cutoff"] for r in cut], marker="_", s=160, color="black",
                   label="rung cut-off", zorder=3)
    stopped = [r for r in rungs if r["decision"] == "STOP" and r["value"] is not None]
    if stopped:
        ax.scatter([r["epoch"] for r in stopped], [r["value"] for r in stopped], marker="x", color="tab:red",
                   label="stopped at a rung", zorder=4)
    ax.set_xlabel("epoch")
    ax.set_ylabel(records.metric)
    ax.set_title(f"Learning curves of {len(curves)} trials (dotted: rungs)")
    # beside the axes: never over a curve, and no search for the emptiest corner (slow with thousands of curves)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return [_save(figure, out / "learning_curves.png"), _write_csv(out / "learning_curves.csv", rows),
            *([_write_csv(out / "rungs.csv", rungs)] if rungs else [])]


def best_so_far(records: ExperimentRecords, out: Path) -> list[Path]:
    """``best_so_far.png`` (against trials ended, and against wall time — a simulation's simulated time) and
    ``best_so_far.csv``."""
    simulated = any(r.sim_ended_s is not None for r in records.trials.values())
    def ended_at(r: Any) -> float | None:
        return r.sim_ended_s if simulated else r.ended_at

    ended = sorted((r for r in records.trials.values() if ended_at(r) is not None and r.state == "COMPLETE"
                    and r.last_value is not None and math.isfinite(r.last_value)), key=ended_at)
    if not ended:
        return []
    start = 0.0 if simulated else min(r.started_at for r in records.trials.values())
    time_column = "sim_time_s" if simulated else "wall_time_s"
    pick = max if records.mode == "max" else min
    rows, best = [], None
    for count, record in enumerate(ended, 1):
        best = record.last_value if best is None else pick(best, record.last_value)
        rows.append({"trials_ended": count, time_column: ended_at(record) - start, "trial": record.number,
                     "value": record.last_value, "best_so_far": best})
    plt = _pyplot()
    figure, (by_count, by_time) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, x, label in ((by_count, "trials_ended", "COMPLETE trials ended"),
                         (by_time, time_column, "simulated time (s)" if simulated else "wall time (s)")):
        ax.scatter([r[x] for r in rows], [r["value"] for r in rows], s=12, color="0.6", label="trial")
        ax.step([r[x] for r in rows], [r["best_so_far"] for r in rows], where="post", color="tab:blue",
                label="best so far")
        ax.set_xlabel(label)
    by_count.set_ylabel(f"{records.metric} ({records.mode})")
    by_count.legend(fontsize=8)
    figure.suptitle("Best so far")
    return [_save(figure, out / "best_so_far.png"), _write_csv(out / "best_so_far.csv", rows)]


def winning_cell(genotype: str, out: Path, title: str = "") -> list[Path]:
    """``winning_cell.png``: each cell of ``genotype`` as a graph — inputs, computed nodes, an edge per op (``none``
    edges left out) — and ``winning_cell.txt`` with the genotype."""
    import networkx as nx

    from spaces.nas import Genotype

    cells = Genotype.from_string(genotype).cells
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(cells), figsize=(6 * len(cells), 4.5), squeeze=False)
    for ax, (name, cell) in zip(axes[0], cells.items()):
        inputs = 1 if name == "cell" else 2  # NAS-Bench-201: the cell input; DARTS: c_{k-2}, c_{k-1}
        graph = nx.MultiDiGraph()
        labels = {i: f"in{i}" for i in range(inputs)} | {inputs + k: f"n{k + 1}" for k in range(len(cell.nodes))}
        graph.add_nodes_from(labels)
        for k, op, source in cell.edges():
            if op != "none":
                graph.add_edge(source, inputs + k, op=op)
        if inputs == 2:  # a DARTS cell's output concatenates its computed nodes
            labels["out"] = "out"
            graph.add_edges_from((inputs + k, "out", {"op": ""}) for k in range(len(cell.nodes)))
        # left to right in computation order, on an arch, so that edges skipping nodes stay apart
        order = list(labels)
        position = {node: (i, math.sin(math.pi * i / max(len(order) - 1, 1)) * 0.8 + (0.3 if i < inputs else 0))
                    for i, node in enumerate(order)}
        nx.draw_networkx_nodes(graph, position, ax=ax, node_color="tab:blue", node_size=700, alpha=0.85)
        nx.draw_networkx_labels(graph, position, labels=labels, ax=ax, font_color="white", font_size=9)
        nx.draw_networkx_edges(graph, position, ax=ax, arrows=True, connectionstyle="arc3,rad=0.15",
                               node_size=700, edge_color="0.4")
        nx.draw_networkx_edge_labels(graph, position, ax=ax, font_size=7, connectionstyle="arc3,rad=0.15",
                                     edge_labels={(u, v, key): data["op"]
                                                  for u, v, key, data in graph.edges(keys=True, data=True)})
        ax.set_title("NAS-Bench-201 cell" if name == "cell" else f"{name} cell")
        ax.axis("off")
    figure.suptitle(title or "Winning cell")
    (out / "winning_cell.txt").write_text(genotype + "\n")
    return [_save(figure, out / "winning_cell.png"), out / "winning_cell.txt"]


PLOTS_MAX_TRIALS = 20_000  # a simulation's 100,000 trials get no pictures (each would take minutes)


def draw_all(steps: Sequence[tuple[str, Callable[[], list[Path]]]], notes: list[str]) -> list[Path]:
    """Run each drawing step; one that fails adds a note (never an exception)."""
    paths: list[Path] = []
    for name, step in steps:
        try:
            paths += step()
        except Exception as err:  # noqa: BLE001 - a picture never fails the experiment
            log.debug("plot %s failed", name, exc_info=True)
            notes.append(f"{name}: not drawn ({type(err).__name__}: {str(err)[:200]})")
    return paths


def experiment_plots(folder: Path, cfg: Any, records: ExperimentRecords, decisions: Iterable[Mapping[str, Any]],
                     study_file: Path | None = None) -> tuple[list[Path], list[str]]:
    """Every picture this experiment has data for, in ``folder/plots``; returns the files and the notes on
    pictures that could not be drawn."""
    out = folder / PLOTS_DIR
    out.mkdir(exist_ok=True)
    notes: list[str] = []
    if len(records.trials) > PLOTS_MAX_TRIALS:
        notes.append(f"{len(records.trials)} trials: no pictures above {PLOTS_MAX_TRIALS} trials (fANOVA and a "
                     f"curve per trial would take minutes and show little); the tables hold every number")
        (out / "notes.json").write_text(json.dumps(notes, indent=2))
        return [], notes
    decisions = list(decisions)
    steps: list[tuple[str, Callable[[], list[Path]]]] = [
        ("learning curves", lambda: learning_curves(records, decisions, out)),
        ("best so far", lambda: best_so_far(records, out)),
    ]
    if study_file is not None and study_file.is_file() and cfg.oneshot is None:
        from search._optuna.plots import study_plots

        steps.append(("study plots", lambda: study_plots(study_file, cfg.name, cfg.metric.name, out, notes)))
    cell = _cell_parameter(cfg)
    best = _winner_for_plots(cfg, records)
    if cell is not None and best is not None and isinstance(best.params.get(cell), str):
        steps.append(("winning cell", lambda: winning_cell(best.params[cell], out,
                                                           f"Winning cell: trial {best.number}")))
    paths = draw_all(steps, notes)
    if notes:
        (out / "notes.json").write_text(json.dumps(notes, indent=2))
    return paths, notes


def _cell_parameter(cfg: Any) -> str | None:
    from spaces.nas import CELL_TYPES

    return next((name for name, param in cfg.space.items() if isinstance(param, CELL_TYPES)), None)


def _winner_for_plots(cfg: Any, records: ExperimentRecords) -> Any:
    """The trial whose cell is drawn: the ``select:`` rule's pick with several objectives, else the best."""
    if cfg.multi_objective:
        from search.pareto import SelectionRuleError, select

        try:
            chosen = select(records.pareto_front(), records.objectives, cfg.select.rule, cfg.select.objective,
                            cfg.select.subject_to)
        except SelectionRuleError:
            return None
        return records.trials[chosen["number"]]
    return records.best()
