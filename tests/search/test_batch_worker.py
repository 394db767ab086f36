"""The batched worker's rounds (``search._tune._batching.BatchWorker``, here as a plain object driven by threads, as
Ray's threaded actor drives it): members of a round train together, and no member holds the others — one that
left, one that stopped asking, one whose training failed."""

from __future__ import annotations

import threading

import pytest

from search._tune import _batching
from search._tune._batching import BatchWorker
from trainers import Mnist1dSource, search_data
from trainers.checkpoint import state_from_bytes

PARAMS = {"width": 16, "batch_size": 64, "schedule": "constant"}
JOIN_S = 120  # a round that never starts fails the test here (it would otherwise hang), never passes it


@pytest.fixture(scope="module")
def data():
    return search_data(Mnist1dSource(num_samples=300), seed=0)


def ask(worker, key, epoch, checkpoint=None, seed=1, params=PARAMS, out=None):
    """``worker.epoch`` in a thread of its own (each request blocks until its round ran); its outcome in ``out``."""
    out = {} if out is None else out

    def run():
        try:
            out[key] = worker.epoch(key, "mlp", params, 3, seed, 0, epoch, checkpoint)
        except BaseException as err:  # noqa: BLE001
            out[key] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def finish(*threads):
    for thread in threads:
        thread.join(JOIN_S)
        assert not thread.is_alive(), "a round never started"


def test_members_train_together_and_one_that_left_holds_nobody(data, monkeypatch):
    monkeypatch.setattr(_batching, "GATHER_S", 3600.0)  # only "everyone asked" or "capacity reached" start a round
    worker = BatchWorker(data, capacity=3, want_gpu=False, threads=1, deterministic=True)
    out = {}
    a, _ = ask(worker, "a", 1, seed=1, out=out)
    b, _ = ask(worker, "b", 1, seed=2, out=out)
    c, _ = ask(worker, "c", 1, seed=3, out=out)  # the third fills the worker's capacity: the round starts
    finish(a, b, c)
    assert [out[k][0]["batch_members"] for k in "abc"] == [3.0, 3.0, 3.0]
    assert state_from_bytes(out["a"][1])["epoch"] == 1 and out["a"][2] == "cpu"

    worker.leave("c")  # c's trial ended (pruned, say): a and b are all the seated members now
    second = {}
    a2, _ = ask(worker, "a", 2, out["a"][1], seed=1, out=second)
    b2, _ = ask(worker, "b", 2, out["b"][1], seed=2, out=second)
    finish(a2, b2)
    assert second["a"][0]["batch_members"] == second["b"][0]["batch_members"] == 2.0
    assert worker.stats()["rounds"] == 2 and worker.stats()["members_trained"] == 5


def test_a_member_that_stops_asking_holds_the_others_one_window_at_most(data, monkeypatch):
    monkeypatch.setattr(_batching, "GATHER_S", 0.05)
    worker = BatchWorker(data, capacity=4, want_gpu=False, threads=1, deterministic=True)
    out = {}
    a, _ = ask(worker, "a", 1, seed=1, out=out)
    b, _ = ask(worker, "b", 1, seed=2, out=out)
    finish(a, b)
    hung_b_seat = worker.seats()
    assert sum(hung_b_seat.values()) == 2
    for epoch in (2, 3):  # b never asks again (its trial hangs, or its process died): a goes on alone
        alone, _ = ask(worker, "a", epoch, out["a"][1], seed=1, out=out)
        finish(alone)
        assert out["a"][0]["batch_members"] == 1.0 and state_from_bytes(out["a"][1])["epoch"] == epoch


def test_a_failing_round_fails_its_members_and_the_worker_goes_on(data, monkeypatch):
    worker = BatchWorker(data, capacity=1, want_gpu=False, threads=1, deterministic=True)
    monkeypatch.setattr(worker._trainer, "train_epoch", lambda members: 1 / 0)
    thread, out = ask(worker, "a", 1)
    finish(thread)
    assert isinstance(out["a"], ZeroDivisionError)
    monkeypatch.undo()
    thread, out = ask(worker, "b", 1)  # the next round runs: nothing was left holding the worker
    finish(thread)
    assert out["b"][0]["batch_members"] == 1.0


def test_seats_are_reserved_atomically_up_to_capacity(data):
    worker = BatchWorker(data, capacity=2, want_gpu=False, threads=1, deterministic=True)
    assert worker.sit("a", "s1") and worker.sit("b", "s2")
    assert worker.seats() == {"s1": 1, "s2": 1}
    assert not worker.sit("c", "s1"), "a full worker refuses the next trial (it tries another)"
    assert worker.sit("c", "s1", force=True) and worker.seats() == {"s1": 2, "s2": 1}  # every worker full: sits
    worker.leave("c")
    worker.leave("b")
    assert worker.seats() == {"s1": 1} and worker.sit("d", "s1")
