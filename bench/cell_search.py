"""Cell search at a small budget: random, TPE, regularized evolution (old and new defaults) and REINFORCE, side by
side on synthetic tabular cell benchmarks with a known optimum.

    python bench/cell_search.py [--seeds 50] [--trials 100] [--jobs 2] [--benchmarks nb201 nb201-noisy darts]

Benchmarks (fixed instances, built from ``--instance`` (default 0), independent of the search seeds):

* ``nb201``: every one of the 15,625 NAS-Bench-201 cells gets a deterministic "accuracy": a cell whose output is
  not connected to its input through non-``none`` edges scores 10 (chance, as in NAS-Bench-201); otherwise 70 +
  a per-edge op effect (convolutions better on average) + a pairwise interaction for every pair of edges. The
  table gives the exact optimum, so the regret of the best cell found is exact.
* ``nb201-noisy``: the same table, each evaluation observed with N(0, 1) noise (seeded per search seed and trial);
  the regret is the true accuracy's, of the trial with the best *observed* value.
* ``darts``: a DARTS genotype (normal + reduce cell, 4 nodes, 7 ops; 24 decisions, ~10^18 genotypes): per node, an
  effect of its input pair, of each input's op, and an interaction of the two ops and of the pair with the first op
  — separable across nodes, so the optimum is exact too.

Each searcher runs ``--trials`` evaluations per seed through :func:`search._optuna.suggest_config`, as hypernas
asks a cell (one categorical per decision). Printed per benchmark: the best-found regret (mean ± std over seeds,
and its standard error), its ratio to TPE's mean regret, and the fraction of trials that repeated an earlier
trial's configuration.

Searchers: ``random``; ``tpe``: Optuna's default ``TPESampler(seed=...)`` (in Optuna 5.0 already multivariate);
``tpe-hypernas`` (only with ``--searchers``): ``searcher: tpe`` (multivariate, grouped) — on these spaces, with no
conditional parameters, it proposes exactly what ``tpe`` does; ``evolution-old``: the evolution sampler with its former defaults (population 20,
tournament 5, no dedupe); ``evolution``: its current defaults; ``reinforce``: the REINFORCE sampler's defaults.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent)]

from spaces import Space  # noqa: E402
from spaces.nas import DartsCell, NB201Cell  # noqa: E402

SEARCHERS = ("random", "tpe", "tpe-hypernas", "evolution-old", "evolution", "reinforce")
DEFAULT_SEARCHERS = ("random", "tpe", "evolution-old", "evolution", "reinforce")
BENCHMARKS = ("nb201", "nb201-noisy", "darts")
NB201_OP_MEANS = np.array([-3.0, 0.0, 2.0, 3.0, 0.5])  # none, skip, conv 1x1, conv 3x3, avg pool
DARTS_OP_MEANS = np.array([0.0, 0.0, 0.5, 1.5, 1.2, 1.0, 0.8])  # max/avg pool, skip, sep 3/5, dil 3/5


class NB201Table:
    """A fixed "accuracy" for every NAS-Bench-201 cell, by op index per edge (edges in ``decisions()`` order)."""

    def __init__(self, instance: int) -> None:
        self.cell = NB201Cell()
        self.space = Space({"cell": self.cell})
        self.edges = [name for name, _ in self.cell.decisions()]  # node1.in0, node2.in0, node2.in1, node3.in0..2
        rng = np.random.default_rng([instance, 201])
        n_edges, n_ops = len(self.edges), len(self.cell.ops)
        main = NB201_OP_MEANS + rng.normal(0, 1.5, (n_edges, n_ops))
        pair = rng.normal(0, 1.0, (n_edges, n_edges, n_ops, n_ops))
        combos = np.array(list(itertools.product(range(n_ops), repeat=n_edges)))  # 15,625 × 6
        acc = 70 + main[np.arange(n_edges), combos].sum(axis=1)
        for e, f in itertools.combinations(range(n_edges), 2):
            acc += pair[e, f, combos[:, e], combos[:, f]]
        live = combos != 0  # not "none"
        reach1 = live[:, 0]
        reach2 = live[:, 1] | (reach1 & live[:, 2])
        reach3 = live[:, 3] | (reach1 & live[:, 4]) | (reach2 & live[:, 5])
        self.table = np.where(reach3, acc, 10.0)
        self.optimum = float(self.table.max())
        self._radix = n_ops ** np.arange(n_edges - 1, -1, -1)
        self._index = {op: i for i, op in enumerate(self.cell.ops)}

    def accuracy(self, params: dict) -> float:
        ops = np.array([self._index[params[f"cell.{edge}"]] for edge in self.edges])
        return float(self.table[int(ops @ self._radix)])


class DartsTable:
    """A separable "accuracy" of a DARTS genotype: a sum over cells and nodes of a per-node table."""

    def __init__(self, instance: int) -> None:
        self.cell = DartsCell()
        self.space = Space({"cell": self.cell})
        rng = np.random.default_rng([instance, 2018])
        n_ops = len(self.cell.ops)
        self.nodes = [(c, i) for c in self.cell.cell_names for i in range(self.cell.nodes)]
        self.pairs = {key: choices for key, choices in self.cell.decisions() if key.endswith(".inputs")}
        self.tables = {}
        for c, i in self.nodes:
            n_pairs = len(self.pairs[f"{c}.node{i}.inputs"])
            table = (rng.normal(0, 1.0, (n_pairs, 1, 1)) + (DARTS_OP_MEANS + rng.normal(0, 0.7, n_ops))[None, :, None]
                     + (DARTS_OP_MEANS + rng.normal(0, 0.7, n_ops))[None, None, :]
                     + rng.normal(0, 0.7, (1, n_ops, n_ops)) + rng.normal(0, 0.7, (n_pairs, n_ops, 1)))
            self.tables[(c, i)] = table
        self.optimum = float(50 + sum(t.max() for t in self.tables.values()))
        self._op = {op: k for k, op in enumerate(self.cell.ops)}

    def accuracy(self, params: dict) -> float:
        total = 50.0
        for c, i in self.nodes:
            key = f"cell.{c}.node{i}"
            pair = self.pairs[f"{c}.node{i}.inputs"].index(params[f"{key}.inputs"])
            total += self.tables[(c, i)][pair, self._op[params[f"{key}.op0"]], self._op[params[f"{key}.op1"]]]
        return float(total)


def make_sampler(name: str, seed: int):
    import optuna

    from search._optuna import make_sampler as hypernas_sampler
    from search._optuna.evolution import RegularizedEvolutionSampler
    from search._optuna.reinforce import ReinforceSampler
    from search.config import SearcherConfig

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "tpe-hypernas":
        return hypernas_sampler(SearcherConfig.of("tpe"), Space({}), seed)
    if name == "evolution-old":
        return RegularizedEvolutionSampler(population_size=20, sample_size=5, seed=seed, dedupe=False)
    if name == "evolution":
        return RegularizedEvolutionSampler(seed=seed)
    if name == "reinforce":
        return ReinforceSampler(seed=seed)
    raise ValueError(f"unknown searcher {name!r} (known: {', '.join(SEARCHERS)})")


_TABLES: dict = {}


def benchmark(name: str, instance: int):
    key = (name.removesuffix("-noisy"), instance)
    if key not in _TABLES:
        _TABLES[key] = NB201Table(instance) if key[0] == "nb201" else DartsTable(instance)
    return _TABLES[key]


def run_one(job: tuple) -> tuple[float, float]:
    """One search: ``(regret of the best trial, fraction of trials repeating an earlier configuration)``."""
    import optuna

    from search._optuna import suggest_config

    bench_name, searcher, seed, trials, instance = job
    table = benchmark(bench_name, instance)
    noisy = bench_name.endswith("-noisy")
    true_values: dict[int, float] = {}

    def objective(trial) -> float:
        suggest_config(trial, table.space)
        value = table.accuracy(trial.params)
        true_values[trial.number] = value
        if noisy:
            value += float(np.random.default_rng([seed, trial.number, 7]).normal(0, 1.0))
        return value

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.create_study(direction="maximize", sampler=make_sampler(searcher, seed))
        study.optimize(objective, n_trials=trials)
    regret = table.optimum - true_values[study.best_trial.number]
    seen, repeats = set(), 0
    for trial in study.trials:
        key = tuple(sorted(trial.params.items()))
        repeats += key in seen
        seen.add(key)
    return regret, repeats / len(study.trials)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--instance", type=int, default=0, help="which random benchmark instance")
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS), choices=BENCHMARKS)
    parser.add_argument("--searchers", nargs="+", default=list(DEFAULT_SEARCHERS), choices=SEARCHERS)
    args = parser.parse_args(argv)

    jobs = [(b, s, seed, args.trials, args.instance)
            for b in args.benchmarks for s in args.searchers for seed in range(args.seeds)]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run_one, jobs, chunksize=max(1, args.seeds // 4)))
    by_run = {job[:2]: [] for job in jobs}
    for job, result in zip(jobs, results):
        by_run[job[:2]].append(result)

    print(f"{args.trials} trials x {args.seeds} seeds, instance {args.instance}; regret = optimum - true value of "
          f"the best trial (lower is better); repeats = trials repeating an earlier configuration")
    for b in args.benchmarks:
        print(f"\n{b} (optimum {benchmark(b, args.instance).optimum:.2f})")
        print(f"  {'searcher':<14} {'regret mean ± std':>19} {'(se)':>7} {'vs tpe':>7} {'repeats mean ± std':>20}")
        tpe = np.mean([r for r, _ in by_run[(b, "tpe")]]) if (b, "tpe") in by_run else None
        for s in args.searchers:
            regrets = np.array([r for r, _ in by_run[(b, s)]])
            repeats = np.array([f for _, f in by_run[(b, s)]])
            ratio = f"{regrets.mean() / tpe:7.2f}" if tpe else f"{'-':>7}"
            print(f"  {s:<14} {regrets.mean():9.3f} ± {regrets.std():7.3f} {regrets.std() / np.sqrt(len(regrets)):7.3f}"
                  f" {ratio} {100 * repeats.mean():11.1f}% ± {100 * repeats.std():4.1f}%")
    print(f"\n{time.perf_counter() - started:.0f} s with {args.jobs} worker processes")


if __name__ == "__main__":
    main()
