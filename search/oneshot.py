"""One-shot NAS experiments: supernet searches first, then the genotypes they derive retrained as ordinary trials.

An experiment with a ``oneshot:`` section runs in two phases, numbered on one trial axis and recorded in one
journal, one Parquet table and under one MLflow parent:

1. **search** — trials ``0 .. search_seeds-1`` each train a supernet (``trainers.nas.oneshot``: DARTS or ENAS)
   over the space's cell parameter, with their own derived seeds. One-shot methods are seed-sensitive: several
   searches show the spread. Each reports its architecture weights per epoch and the genotype it derives; early
   stopping never applies to them, and they are never selected (their validation value is the supernet's).
2. **retrain** — once every search has ended, the ``top_k`` distinct derived genotypes (best search first) become
   the choices of the cell parameter; each is retrained once first (queued in the sampler), then the configured
   searcher picks the remaining ``budget.trials`` retrains over the rest of the space, with the usual scheduler.
   Selection, ``hypernas test``, replay and resume are those of any experiment.

:class:`OneShotStudy` presents both phases behind :class:`~search._optuna.AskTellStudy`'s ask/tell interface, so
the Ray searcher drives it unchanged: phase 1 needs no sampler (its configurations are fixed), phase 2 is an
Optuna study over the retrain space, its numbers shifted by ``search_seeds``.
"""

from __future__ import annotations

import html
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping

from search.config import ExperimentConfig
from search.seeds import derive_seed
from spaces import Categorical, Space

_GENOTYPES = "hypernas.genotypes"  # the retrain study's attribute: the derived genotypes it chooses among
FINISHED = "FINISHED"  # ``ask()``: nothing left to ask, ever (Ray's Searcher.FINISHED)
GENOTYPE_KEY = "genotype"  # the string a search trial reports each epoch: the genotype derived so far
ALPHA_PREFIX = "alpha."  # architecture weights, reported as metrics alpha.<cell>.e<edge>.<op>
_ALPHA = re.compile(r"alpha\.(?P<cell>[^.]+)\.e(?P<edge>\d+)\.(?P<op>.+)")


def search_params(cfg: ExperimentConfig) -> dict[str, Any]:
    """The configuration every supernet search of ``cfg`` trains (the seed is what differs)."""
    one = cfg.oneshot
    cell = cfg.space[one.cell]
    return {"method": one.method, "cell_space": json.dumps(cell.to_dict(), sort_keys=True), **dict(one.settings)}


# a search that ended without an error: all its epochs, or fewer when it stopped itself (``stability_patience``)
ENDED_WELL = ("COMPLETE", "PRUNED")


def derived_genotypes(cfg: ExperimentConfig, searches: Iterable[Any]) -> list[str]:
    """The ``top_k`` distinct genotypes the ended searches derived, best search first (by the experiment's metric,
    ties to the lower trial number). ``searches``: the search trials' records (``state``, ``last_value``,
    ``derived_genotype``, ``number``)."""
    done = [r for r in searches if r.state in ENDED_WELL and r.derived_genotype and r.last_value is not None
            and math.isfinite(r.last_value)]
    sign = -1.0 if cfg.metric.mode == "max" else 1.0
    out: list[str] = []
    for record in sorted(done, key=lambda r: (sign * r.last_value, r.number)):
        if record.derived_genotype not in out:
            out.append(record.derived_genotype)
    return out[:cfg.oneshot.top_k]


def retrain_space(cfg: ExperimentConfig, genotypes: list[str]) -> Space:
    """``cfg.space`` with its cell parameter replaced by a choice among the derived ``genotypes``."""
    params = {name: (Categorical(list(genotypes)) if name == cfg.oneshot.cell else param)
              for name, param in cfg.space.items()}
    return Space(params)


def retrain_budget(cfg: ExperimentConfig, space: Space) -> int:
    """Retrain trials: ``budget.trials``, but no more than there are configurations when the derived genotypes
    are all the space leaves open (each is trained once), or than a grid searcher's grid."""
    cap = cfg.searcher.max_trials(space)
    if cap is not None:
        return min(cfg.budget.trials, cap)
    others_free = any(name != cfg.oneshot.cell and (param.grid_values() is None or len(param.grid_values()) > 1)
                      for name, param in space.items())
    return cfg.budget.trials if others_free else min(cfg.budget.trials, len(space[cfg.oneshot.cell].grid_values()))


def retrain_study_name(cfg: ExperimentConfig) -> str:
    return f"{cfg.name}.retrain"


class OneShotStudy:
    """The two phases of a one-shot experiment behind the ask/tell interface of
    :class:`~search._optuna.AskTellStudy`, keyed by hypernas trial numbers.

    ``derived``: returns the search trials' records as they stand (the journal's view), read when the retrain
    phase starts. ``ask()`` returns ``None`` while searches still run (nothing to ask yet) and :data:`FINISHED`
    once the retrain budget is asked (or no search derived a genotype).
    """

    def __init__(self, cfg: ExperimentConfig, storage_path: Path, searches: Callable[[], Iterable[Any]],
                 asked: Collection[int] = (), told: Collection[int] = ()) -> None:
        self.cfg = cfg
        self.count = cfg.oneshot.search_seeds
        self.storage_path = storage_path
        self.searches = searches
        self._asked = set(asked)
        self._told = set(told)
        self._steps: dict[int, dict[int, float]] = {}  # search trial -> {epoch: value}
        self.retrain: Any = None  # the AskTellStudy over the retrain space, once the searches ended
        self.genotypes: list[str] = []
        self.budget = 0

    @classmethod
    def load(cls, cfg: ExperimentConfig, storage_path: Path, searches: Callable[[], Iterable[Any]],
             events: Any) -> "OneShotStudy":
        """An interrupted experiment's: searches asked and told from the decision log, the retrain study (if it had
        started) from the Optuna journal, over the same derived genotypes."""
        from search._optuna import AskTellStudy

        count = cfg.oneshot.search_seeds
        asked = {n for n in events.asked() if n < count}
        told = {row["trial"] for row in events.rows if row["kind"] == "tell" and row["trial"] < count}
        study = cls(cfg, storage_path, searches, asked, told)
        for number in asked - told:
            study._steps[number] = {}
        if AskTellStudy.exists(retrain_study_name(cfg), storage_path):
            study._start_retrain(load=True)
        return study

    # -- phases ---------------------------------------------------------------------------------------------------
    def _start_retrain(self, load: bool = False) -> bool:
        from search._optuna import AskTellStudy

        name, seed = retrain_study_name(self.cfg), derive_seed(self.cfg.seed, "sampler")
        # resumed: the genotypes the retrain study was created over (the records may have changed since, e.g. a
        # failed search retried), so its choices and numbers mean the same cells
        self.genotypes = AskTellStudy.stored(name, self.storage_path, _GENOTYPES) if load else \
            derived_genotypes(self.cfg, self.searches())
        if not self.genotypes:
            return False
        space = retrain_space(self.cfg, self.genotypes)
        self.budget = retrain_budget(self.cfg, space)
        if load:
            self.retrain = AskTellStudy.load(name, space, self.cfg.searcher, seed, self.storage_path,
                                             constrained=bool(self.cfg.constraints))
        else:
            self.retrain = AskTellStudy.create(name, space, self.cfg.searcher, seed, self.cfg.metric.mode,
                                               self.storage_path, constrained=bool(self.cfg.constraints))
            self.retrain.store(_GENOTYPES, self.genotypes)
        if self.cfg.searcher.type != "grid":  # a grid covers every genotype (and refuses enqueued trials)
            # each derived genotype is retrained once before the sampler chooses (again after a crash mid-way:
            # Optuna skips the ones already queued or asked)
            for genotype in self.genotypes:
                self.retrain.enqueue({self.cfg.oneshot.cell: genotype})
        return True

    def ask(self) -> tuple[int, dict[str, Any]] | str | None:
        if len(self._asked) < self.count:
            number = min(set(range(self.count)) - self._asked)
            self._asked.add(number)
            self._steps[number] = {}
            return number, search_params(self.cfg)
        if self.retrain is None:
            searches = list(self.searches())
            if len(self._told) < self.count or any(r.state in ("RUNNING", "INTERRUPTED") for r in searches):
                return None  # the retrain phase waits for every search (a retried one too)
            if not self._start_retrain():
                return FINISHED
        if self.retrain.asked() >= self.budget:
            return FINISHED
        number, params = self.retrain.ask()
        return number + self.count, params

    # -- the AskTellStudy interface, by trial number ----------------------------------------------------------------
    def report(self, number: int, step: int, value: float) -> None:
        if number >= self.count:
            if self.retrain is not None:
                self.retrain.report(number - self.count, step, value)
            return
        steps = self._steps.get(number)
        if steps is not None and step not in steps and value == value:
            steps[step] = float(value)

    def last_value(self, number: int) -> float | None:
        if number >= self.count:
            return self.retrain.last_value(number - self.count) if self.retrain is not None else None
        steps = self._steps.get(number)
        return steps[max(steps)] if steps else None

    def tell(self, number: int, state: str, value: float | None = None,
             constraints: list[float] | None = None) -> None:
        if number >= self.count:
            if self.retrain is not None:
                self.retrain.tell(number - self.count, state, value, constraints)
            return
        if number in self._asked:
            self._told.add(number)
            self._steps.pop(number, None)

    def is_open(self, number: int) -> bool:
        if number >= self.count:
            return self.retrain is not None and self.retrain.is_open(number - self.count)
        return number in self._asked and number not in self._told

    def open_trials(self, skip: Collection[int] = ()) -> list[tuple[int, dict[str, Any]]]:
        out = [(n, search_params(self.cfg)) for n in sorted(self._asked - self._told) if n not in skip]
        if self.retrain is not None:
            out += [(n + self.count, params) for n, params in
                    self.retrain.open_trials(skip={s - self.count for s in skip if s >= self.count})]
        return out

    def fail_open_trials(self) -> None:
        self._told |= self._asked
        self._steps.clear()
        if self.retrain is not None:
            self.retrain.fail_open_trials()

    def asked(self) -> int:
        return len(self._asked) + (self.retrain.asked() if self.retrain is not None else 0)


def search_summary(searches: Iterable[Any]) -> dict[str, Any]:
    """The spread over the search seeds: the searches' final validation values (of the supernet) and how many
    distinct genotypes they derived — what a seed-sensitive one-shot method must report."""
    searches = list(searches)
    values = [r.last_value for r in searches if r.state in ENDED_WELL and r.last_value is not None
              and math.isfinite(r.last_value)]
    distinct = {r.derived_genotype for r in searches if r.derived_genotype}
    out: dict[str, Any] = {"searches": len(searches), "completed": len(values), "distinct_genotypes": len(distinct)}
    if values:
        out |= {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "min": min(values),
                "max": max(values)}
    return out


def architecture_weights(metrics: Mapping[str, float]) -> dict[str, dict[int, dict[str, float]]]:
    """``alpha.<cell>.e<edge>.<op>`` metrics as ``{cell: {edge: {op: weight}}}``."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for key, value in metrics.items():
        match = _ALPHA.fullmatch(key)
        if match and match["op"] != "input":  # ENAS' input probabilities on DARTS cells are not an op
            out.setdefault(match["cell"], {}).setdefault(int(match["edge"]), {})[match["op"]] = float(value)
    return out


def heatmap_svg(weights: Mapping[str, Mapping[int, Mapping[str, float]]], title: str = "") -> str:
    """A heatmap (edges × ops, one block per cell) of architecture weights, as an SVG document: MLflow's artifact
    view shows it as an image, and it needs no plotting library on the driver."""
    cell_w, cell_h, left, top = 70, 18, 60, 40
    ops = sorted({op for edges in weights.values() for by_op in edges.values() for op in by_op})
    rows: list[str] = []
    y = top
    for cell, edges in weights.items():
        rows.append(f'<text x="4" y="{y + 12}" font-weight="bold">{html.escape(cell)}</text>')
        y += cell_h
        for edge in sorted(edges):
            by_op = edges[edge]
            best = max(by_op, key=by_op.get)
            rows.append(f'<text x="4" y="{y + 13}">e{edge}</text>')
            for i, op in enumerate(ops):
                w = by_op.get(op)
                if w is None:
                    continue
                shade = int(255 - 200 * max(0.0, min(1.0, w)))
                stroke = ' stroke="black" stroke-width="2"' if op == best else ""
                rows.append(f'<rect x="{left + i * cell_w}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                            f'fill="rgb({shade},{shade},255)"{stroke}><title>{html.escape(op)}: {w:.3f}</title></rect>'
                            f'<text x="{left + i * cell_w + 4}" y="{y + 12}" font-size="10">{w:.2f}</text>')
            y += cell_h
        y += cell_h // 2
    header = "".join(f'<text x="{left + i * cell_w}" y="{top - 8}" font-size="9" '
                     f'transform="rotate(-20 {left + i * cell_w} {top - 8})">{html.escape(op)}</text>'
                     for i, op in enumerate(ops))
    width, height = left + cell_w * max(len(ops), 1) + 10, y + 10
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            f'font-size="11"><text x="4" y="14">{html.escape(title)}</text>{header}{"".join(rows)}</svg>\n')
