"""Which trials a chaos drill picks: by number, by node, and a seeded fraction that is exact in every stretch."""

from __future__ import annotations

import math

import pytest

from search.config import FaultRule
from search.faults import FaultPlan


def chosen(rule: FaultRule, numbers: range, seed: int = 0, resources: frozenset = frozenset()) -> list[int]:
    return [n for n in numbers if FaultPlan.for_trial([rule], n, 1, seed, lambda: set(resources)).rules]


@pytest.mark.parametrize("fraction", [0.25, 0.1, 1 / 3, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_a_fraction_is_exact_in_every_run_of_consecutive_trials(fraction, seed):
    picked = set(chosen(FaultRule(fraction=fraction, slow=4), range(200), seed))
    for start in range(0, 150, 7):
        for length in (4, 10, 24, 50):
            count = len(picked & set(range(start, start + length)))
            assert math.floor(fraction * length) <= count <= math.ceil(fraction * length), (start, length, count)


def test_a_fraction_depends_on_the_seed_only():
    rule = FaultRule(fraction=0.25, slow=4)
    assert chosen(rule, range(24), seed=3) == chosen(rule, range(24), seed=3)
    assert len(chosen(rule, range(24), seed=3)) == 6  # a quarter of 24, not "about"
    phases = {tuple(chosen(rule, range(8), seed=s)) for s in range(40)}
    assert len(phases) == 4  # the seed picks which trial of each four; every choice occurs


def test_numbers_nodes_and_first_attempt_only():
    assert chosen(FaultRule(trials=(0, 3), slow=2), range(6)) == [0, 3]
    on_slow_node = FaultRule(node_resource="slow_node", slow=4)
    assert chosen(on_slow_node, range(3), resources=frozenset({"slow_node"})) == [0, 1, 2]
    assert chosen(on_slow_node, range(3), resources=frozenset({"CPU"})) == []
    once = FaultRule(trials=(2,), raise_at_epoch=1, first_attempt_only=True)
    assert FaultPlan.for_trial([once], 2, 1, 0, set).rules == [once]
    assert FaultPlan.for_trial([once], 2, 2, 0, set).rules == []


def test_a_held_trial_goes_on_once_its_release_file_exists(tmp_path):
    import threading

    release = tmp_path / "go"
    plan = FaultPlan([FaultRule(trials=(0,), hang_at_epoch=2, release_file=str(release))], attempt=1)
    plan.before_report(1, 0.0)  # not the epoch it holds at
    done = threading.Event()
    worker = threading.Thread(target=lambda: (plan.before_report(2, 0.0), done.set()), daemon=True)
    worker.start()
    assert not done.wait(0.3)  # held: the file is not there
    release.touch()
    assert done.wait(30)  # released
