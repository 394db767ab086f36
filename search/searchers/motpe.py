"""Multi-objective TPE: Optuna's ``TPESampler``, the ``tpe`` searcher's very sampler and settings, on a study with
several directions — good and bad configurations are then split by non-domination rank and hypervolume
contribution instead of one value (Ozaki et al., 2020/2022). A name of its own so that ``tpe`` stays the
single-objective searcher and a multi-objective config says what it gets."""

from __future__ import annotations

from search.registry import SEARCHERS, Searcher
from search.searchers.tpe import TPESettings, _make

ENTRY = SEARCHERS.register(Searcher(
    "motpe", "multi-objective TPE (Optuna): models the Pareto-good configurations; the default for `objectives:`",
    TPESettings, _make, multi_objective=True))
