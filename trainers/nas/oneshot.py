"""The ``oneshot`` recipe: weight-sharing architecture search in one training run — DARTS (Liu et al. 2019) or
ENAS (Pham et al. 2018) — over a NAS-Bench-201 or DARTS cell space, on 1-D signals or 2-D images.

Data: ``spec.data.train`` is split in two halves with a generator seeded by ``spec.seed`` — the supernet's
weights train on one, the architecture (DARTS' alphas, ENAS' controller) on the other (DARTS' bilevel split).
``spec.data.val`` serves only the per-epoch ``val_loss``/``val_accuracy``: those score the supernet run as the
*derived* architecture (a discrete path, one op per edge, batch-norm statistics re-estimated for that path on
weight-half batches) — never the mixed supernet. There is no test split here.

Each step, DARTS first updates the alphas on an arch-half batch — first order ∇α L_arch(w, α), or second order
with the unrolled weights w' = w − ξ∇w L_train(w, α) (ξ the current weight learning rate; plain SGD, without
momentum or weight decay, as the common reimplementations unroll it) and the finite-difference Hessian-vector
product of Liu et al. — then the weights on a weight-half batch with softmax(α) fixed. With ``latency_weight``
λ > 0 the arch loss adds λ·Σ_edges Σ_ops softmax(α)·latency_ms(op) (ProxylessNAS / FBNet), from a per-op table
measured on the trial's device at the start (it travels in the checkpoint, so a resumed run uses the same one).
ENAS trains the shared weights on a child sampled by the controller (weight half), then takes one REINFORCE step:
reward = the accuracy of another sampled child on an arch-half batch (batch-norm in training mode), advantage =
reward − moving-average baseline (updated first, as in Pham et al.), plus an entropy bonus. See
:class:`~trainers.nas.supernet.Controller` for why its policy is factorised.

Each epoch reports ``train_loss``, ``val_loss``, ``val_accuracy``, ``epoch_time_s``, the derived architecture's
``params`` (= ``derived_params``), ``macs``, ``latency_ms`` (= ``measured_latency_ms``) and
``predicted_latency_ms`` (its ops' latencies from the table, cells only), the architecture weights
``alpha.<cell>.e<edge>.<op>`` (ENAS: the controller's probabilities) and the string ``genotype``.
Latency-aware runs (λ > 0) depend on measured times, so two fresh runs may differ; everything else follows the
seed bit for bit on CPU, and a run resumed from any epoch's state continues bit for bit.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from spaces import SpaceError
from trainers.hardware import count_macs, measure_latency_ms
from trainers.hyper import resolve
from trainers.nas._oneshot_declarations import ONESHOT_HYPERPARAMETERS as HYPERPARAMETERS
from trainers.nas._oneshot_declarations import ONESHOT_METRICS as METRICS
from trainers.nas._oneshot_declarations import parse_cell_space
from trainers.nas.supernet import (Controller, DiscretePath, Supernet, alpha_metrics, derive_genotype,
                                   expected_cost, recalibrate_batchnorm, selection_cost)
from trainers.recipes._fit import TorchClassifier, _optimizer, _schedule, _shift
from trainers.reporting import Reporter
from trainers.seeding import seed_everything
from trainers.spec import TrialSpec

__all__ = ["HYPERPARAMETERS", "METRICS", "arch_gradient", "reinforce_step", "split_halves", "train"]

_GRAD_CLIP = 5.0  # DARTS clips the weights' gradient norm at 5
_CALIBRATION_BATCHES = 4


def split_halves(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices ``(weight half, arch half)`` of ``n`` training rows, a permutation seeded by ``seed``; the
    weight half takes the odd row."""
    if n < 2:
        raise SpaceError("data", f"one-shot search splits the training rows in two halves: needs >= 2 (got {n})")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n // 2:], order[:n // 2]


def _arch_loss(net: Supernet, x: torch.Tensor, y: torch.Tensor, latency: Mapping[str, torch.Tensor] | None,
               latency_weight: float) -> torch.Tensor:
    weights = net.arch_weights()
    loss = F.cross_entropy(net(x, weights), y)
    if latency_weight > 0 and latency is not None:
        loss = loss + latency_weight * expected_cost(weights, latency)
    return loss


def arch_gradient(net: Supernet, arch_batch: tuple[torch.Tensor, torch.Tensor],
                  weight_batch: tuple[torch.Tensor, torch.Tensor] | None = None, *, order: int = 1, xi: float = 0.0,
                  latency: Mapping[str, torch.Tensor] | None = None, latency_weight: float = 0.0) -> float:
    """Set ``.grad`` of ``net``'s architecture parameters to DARTS' architecture gradient; return the arch loss.

    ``order=1``: ∇α L_arch(w, α) on ``arch_batch``. ``order=2``: ∇α L_arch(w', α) − ξ·∇²_{α,w} L_train(w, α)·
    ∇w' L_arch(w', α) with w' = w − ξ∇w L_train(w, α) on ``weight_batch``, the Hessian-vector product by central
    differences at w ± ε∇w' L_arch (ε = 0.01 / ‖∇w' L_arch‖). The weights are restored exactly afterwards
    (batch-norm running statistics do move). ``latency``/``latency_weight`` add the expected-latency penalty.
    """
    alphas = net.arch_parameters()
    if order == 1:
        loss = _arch_loss(net, *arch_batch, latency, latency_weight)
        grads = torch.autograd.grad(loss, alphas)
    elif order == 2:
        if weight_batch is None:
            raise ValueError("the second-order architecture gradient needs a weight batch")
        weights = net.weight_parameters()
        x_w, y_w = weight_batch
        saved = [p.detach().clone() for p in weights]

        def train_loss() -> torch.Tensor:
            return F.cross_entropy(net(x_w, net.arch_weights()), y_w)

        step = torch.autograd.grad(train_loss(), weights, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(weights, step):
                if g is not None:
                    p.sub_(xi * g)
        loss = _arch_loss(net, *arch_batch, latency, latency_weight)
        found = torch.autograd.grad(loss, alphas + weights, allow_unused=True)
        direct = found[:len(alphas)]
        d_w = [torch.zeros_like(p) if g is None else g for p, g in zip(weights, found[len(alphas):])]
        eps = 0.01 / max(float(torch.cat([g.flatten() for g in d_w]).norm()), 1e-12)

        def alpha_grad_at(sign: float) -> tuple[torch.Tensor, ...]:
            with torch.no_grad():
                for p, w, d in zip(weights, saved, d_w):
                    p.copy_(w + sign * eps * d)
            return torch.autograd.grad(train_loss(), alphas)

        plus, minus = alpha_grad_at(1.0), alpha_grad_at(-1.0)
        with torch.no_grad():
            for p, w in zip(weights, saved):
                p.copy_(w)
        grads = [d - xi * (gp - gm) / (2 * eps) for d, gp, gm in zip(direct, plus, minus)]
    else:
        raise ValueError(f"order must be 1 or 2 (got {order})")
    for alpha, grad in zip(alphas, grads):
        alpha.grad = grad.detach()
    return float(loss.detach())


def reinforce_step(controller: Controller, optimizer: torch.optim.Optimizer, net: Supernet,
                   batch: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator, baseline: float, *,
                   baseline_decay: float, entropy_weight: float) -> tuple[float, float]:
    """One REINFORCE update of ``controller``: sample a child, reward = its accuracy on ``batch``, baseline ←
    decay·baseline + (1 − decay)·reward, loss = −(reward − baseline)·log p(child) − entropy_weight·entropy.
    Returns ``(reward, new baseline)``."""
    genotype, log_prob, entropy = controller.sample(generator)
    x, y = batch
    with torch.no_grad():
        reward = float((net(x, genotype).argmax(1) == y).float().mean())
    baseline = baseline_decay * baseline + (1 - baseline_decay) * reward
    loss = -(reward - baseline) * log_prob - entropy_weight * entropy
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return reward, baseline


def _weight_step(net: Supernet, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, arch: Any,
                 label_smoothing: float) -> float:
    loss = F.cross_entropy(net(x, arch), y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_([p for p in net.weight_parameters() if p.grad is not None], _GRAD_CLIP)
    optimizer.step()
    return float(loss.detach())


def train(spec: TrialSpec, reporter: Reporter) -> TorchClassifier:
    """Search (DARTS or ENAS) for ``spec.epochs`` epochs; return the derived architecture's evaluator — the
    supernet run as that discrete path — with its genotype string as the attribute ``genotype``."""
    hp = resolve(HYPERPARAMETERS, spec.params)
    cell = parse_cell_space(hp["cell_space"])
    if len(spec.data.input_shape) not in (1, 2):
        raise SpaceError("data", f"the oneshot recipe takes 1-D signals or 2-D images "
                                 f"(got rows of shape {spec.data.input_shape})")
    enas = hp["method"] == "enas"
    seed_everything(spec.seed, deterministic=spec.deterministic, threads=spec.threads)
    device = torch.device(spec.device)
    x_train = torch.as_tensor(spec.data.train.x)
    net = Supernet(cell, num_classes=spec.data.num_classes, dim=x_train.ndim - 1, stages=hp["stages"],
                   cells=hp["cells"], channels=hp["channels"], mean=float(x_train.mean()), std=float(x_train.std()))
    net.to(device)
    x_train, y_train = x_train.to(device), torch.as_tensor(spec.data.train.y).to(device)
    weight_rows, arch_rows = (rows.to(device) for rows in split_halves(len(x_train), spec.seed))
    batch_size = min(hp["batch_size"], len(weight_rows))
    steps_per_epoch = math.ceil(len(weight_rows) / batch_size)

    # the weight optimiser sees the weights only (the shared helper takes a module: a list of them)
    optimizer = _optimizer(nn.ParameterList(net.weight_parameters()), hp)
    schedule = _schedule(optimizer, hp, steps_per_epoch * spec.epochs)
    generator = torch.Generator().manual_seed(spec.seed)  # shuffles and augmentation (CPU: same on GPU runs)
    if enas:
        controller = Controller(net)  # stays on the CPU: tiny, and samples from a CPU generator
        arch_optimizer = torch.optim.Adam(controller.parameters(), lr=hp["controller_lr"])
        sampler = torch.Generator().manual_seed(spec.seed ^ 0x5EED)
    else:
        controller, sampler = None, None
        # DARTS' architecture optimiser: Adam, betas (0.5, 0.999)
        arch_optimizer = torch.optim.Adam(net.arch_parameters(), lr=hp["arch_lr"], betas=(0.5, 0.999),
                                          weight_decay=hp["arch_weight_decay"])
    baseline, stable, last_genotype = 0.0, 0, None

    first_epoch, costs = 1, None
    restored = reporter.restore()
    if restored is not None:
        last_epoch, state = restored
        net.load_state_dict(state["supernet"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        arch_optimizer.load_state_dict(state["arch_optimizer"])
        generator.set_state(state["generator"])
        if enas:
            controller.load_state_dict(state["controller"])
            sampler.set_state(state["sampler"])
        baseline, stable, last_genotype = state["baseline"], state["stable"], state["last_genotype"]
        costs = state["costs"]
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        first_epoch = last_epoch + 1
    sample = x_train[:1]
    if costs is None:
        costs = net.op_costs(sample)
    calibration = [x_train[weight_rows[i * batch_size:(i + 1) * batch_size]]
                   for i in range(min(_CALIBRATION_BATCHES, steps_per_epoch))]

    def derived() -> tuple[str, DiscretePath]:
        if enas:
            genotype = controller.greedy()
        else:
            genotype = derive_genotype(cell, net.arch_weights(), net.ops, skip_cap=hp["skip_cap"])
        path = DiscretePath(net, genotype)
        recalibrate_batchnorm(path, calibration)
        return genotype, path

    result = None
    for epoch in range(first_epoch, spec.epochs + 1):
        started = time.perf_counter()
        net.train()
        weight_order = weight_rows[torch.randperm(len(weight_rows), generator=generator).to(device)]
        arch_order = arch_rows[torch.randperm(len(arch_rows), generator=generator).to(device)]
        loss_sum = 0.0
        for step in range(steps_per_epoch):
            rows = weight_order[step * batch_size:(step + 1) * batch_size]
            x_w, y_w = x_train[rows], y_train[rows]
            if hp["augment_shift"] and x_w.ndim == 2:
                x_w = _shift(x_w, hp["augment_shift"], generator)
            # the arch half is as long as the weight half or one row shorter: walk it cyclically
            arch = arch_order[torch.arange(step * batch_size, step * batch_size + len(rows), device=device)
                              % len(arch_order)]
            x_a, y_a = x_train[arch], y_train[arch]
            if enas:
                with torch.no_grad():
                    child, _, _ = controller.sample(sampler)
                loss = _weight_step(net, optimizer, x_w, y_w, child, hp["label_smoothing"])
                _, baseline = reinforce_step(controller, arch_optimizer, net, (x_a, y_a), sampler, baseline,
                                             baseline_decay=hp["baseline_decay"], entropy_weight=hp["entropy_weight"])
            else:
                arch_gradient(net, (x_a, y_a), (x_w, y_w), order=hp["order"], xi=optimizer.param_groups[0]["lr"],
                              latency=costs["latency_ms"], latency_weight=hp["latency_weight"])
                arch_optimizer.step()
                with torch.no_grad():
                    fixed = net.arch_weights()
                loss = _weight_step(net, optimizer, x_w, y_w, fixed, hp["label_smoothing"])
            schedule.step()
            loss_sum += loss * len(rows)
        train_loss = loss_sum / len(weight_rows)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"training diverged at epoch {epoch}: train_loss={train_loss}")

        genotype, path = derived()
        result = genotype, path
        metrics: dict[str, Any] = {"train_loss": train_loss}
        if spec.data.val is not None:
            scores = TorchClassifier(path, device).evaluate(spec.data.val)
            metrics.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        metrics["epoch_time_s"] = time.perf_counter() - started
        chosen = net.selection(genotype)
        derived_params = float(costs["base_params"]["all"]) + selection_cost(chosen, costs["params"])
        measured = measure_latency_ms(path, sample)
        metrics.update(params=derived_params, macs=float(count_macs(path, sample)), latency_ms=measured,
                       predicted_latency_ms=selection_cost(chosen, costs["latency_ms"]),
                       measured_latency_ms=measured, derived_params=derived_params)
        with torch.no_grad():
            metrics.update(controller.probabilities() if enas else alpha_metrics(net.arch_weights(), net.ops))
        metrics["genotype"] = genotype

        stable = stable + 1 if genotype == last_genotype else 0
        last_genotype = genotype
        state = {
            "supernet": net.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "arch_optimizer": arch_optimizer.state_dict(), "generator": generator.get_state(),
            "baseline": baseline, "stable": stable, "last_genotype": last_genotype, "costs": costs,
            "torch_rng": torch.get_rng_state(),
        }
        if enas:
            state.update(controller=controller.state_dict(), sampler=sampler.get_state())
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        reporter.report(epoch, metrics, state)
        if hp["stability_patience"] and stable >= hp["stability_patience"]:
            break  # DARTS+-style early stop: the derived architecture has settled

    genotype, path = result if result is not None else derived()
    evaluator = TorchClassifier(path, device)
    evaluator.genotype = genotype
    return evaluator
