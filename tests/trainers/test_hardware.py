"""Device choice: the one place hypernas picks a device (trials, the final retrain and replays all ask it)."""

from __future__ import annotations

import torch

from trainers.hardware import describe_accelerators, device_name, pick_device


def test_a_gpu_is_used_only_when_wanted_and_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(True) == "cuda:0" and pick_device(False) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(True) == "cpu"  # a run given a GPU share on a machine without CUDA trains on the CPU


def test_the_cpu_is_described_without_cuda():
    assert device_name("cpu") == "cpu"
    info = describe_accelerators()
    assert set(info) == {"cuda", "cudnn", "gpu", "gpu_count"}
    assert (info["gpu"] is None) == (info["gpu_count"] == 0)
