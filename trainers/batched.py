"""K trials of one network shape trained as one vectorised model (``torch.func.vmap`` over ``functional_call``).

Trials whose configurations differ only in optimiser and regularisation settings (:data:`BATCHABLE`) build
networks of the same shape, so one forward and one backward over stacked parameters trains them all: one kernel
launch per op for K trials instead of K. Everything that makes a trial *that* trial stays per member: its model is
built exactly as the solo recipe builds it (same seed, same initial weights, same data statistics), its own
``torch.optim`` optimiser and LR schedule (``_fit._optimizer``/``_fit._schedule``) step its own leaf parameters,
its own CPU generator (seeded with ``spec.seed``) draws its data order and shifts in ``fit_classifier``'s order,
and each epoch returns ``fit_classifier``'s metrics and state layout, so a member resumes from a solo checkpoint
and a solo run resumes from a member's state.

How one step works: each member's leaves are ``torch.stack``-ed (differentiably) into the stacked parameters;
buffers (BatchNorm running statistics, ``Standardize`` mean/std) are stacked and passed in too, so BatchNorm's
in-place running-stat update lands in the stacked, batched buffer (vmap allows in-place updates of a batched
tensor; it refuses them on an unbatched one, which is why buffers must be passed stacked) and is copied back to
the members after the epoch. The per-member mean losses are summed and backpropagated once; each member's
optimiser then steps on its own leaves.

Dropout: under vmap the global RNG would draw one mask for all K, so a member's masks would depend on its
companions. Instead each ``nn.Dropout`` of the vectorised copy reads a per-member noise tensor drawn, outside
vmap, from the member's own generator -- a CPU generator that starts from the global RNG state the solo recipe
has after building the model (saved as ``torch_rng``, as ``fit_classifier`` saves it) and draws the same
``bernoulli_(1 - p) / (1 - p)`` noise of the same shapes in the same order. On CPU the masks therefore equal the
solo run's; on CUDA the solo run draws from the CUDA generator, so masks there match only in distribution.

Companion independence (bit for bit, CPU): a member's metrics and states do not depend on which members share its
batch, where in the batch it sits, or whether the batch holds one member. Stock torch kernels do not give this by
themselves; three were found to depend on K or on the member's slot, and are worked around in the vectorised copy:

* bias gradients of ``nn.Linear`` (a sum over the mini-batch of a ``(K, batch, features)`` gradient: the CPU
  reduction vectorises over the flattened ``K * features`` outputs, so members whose features fall in the
  vector tail get another summation order) -- the bias is added by :class:`_BiasAdd`, whose backward sums each
  member's rows as a contiguous per-row (horizontal) reduction;
* BatchNorm on 2-D inputs (the MLP's ``norm: batch``): its batching rule flattens members into channels, with the
  same tail effect -- run as a 3-D BatchNorm on the transposed ``(1, features, batch)`` view, the same statistics,
  whose kernel reduces each channel on its own;
* K = 1 takes other kernels than K >= 2 (a single-group conv for the CNN's stem, the reductions above) -- a lone
  member is padded with a detached ghost copy of itself, whose results are dropped.

Batched vs solo ``fit_classifier``: not bit-identical -- vmapped linear layers become batched matmuls without
the fused bias (``bmm`` + add instead of ``addmm``), vmapped convolutions become grouped convolutions, BatchNorm
runs on other layouts and the smoothed cross-entropy is written out -- so rounding differs from the first step and
compounds. Measured on CPU (torch 2.13, 1 thread, MNIST-1D 256 training rows, batch 64, 3 epochs; mlp width 32
with norm none/layer/batch, cnn width 8 depth 2 with norm batch/none; adamw, sgd and adam; label smoothing 0 and
0.1; dropout 0 and 0.3): max abs difference over train_loss/val_loss/val_accuracy of 4.8e-7, weights within 2e-7;
tests allow 2e-6. One exception: the MLP with ``norm: batch`` under adam/adamw. The bias of a Linear right before
BatchNorm has a true gradient of zero, so its gradient is rounding noise, which Adam scales to full-size steps; that
bias (and, through BatchNorm's lagging running mean, the validation output) then follows the rounding, solo as well
as batched: measured 2.7e-5 on val_loss and one flipped validation prediction (1.6e-2 val_accuracy) in 3 epochs.
With dropout > 0 the curves agree to the same 4.8e-7 on CPU, since the masks are the solo run's (see above).

Precision: ``precision`` is outside :data:`BATCHABLE`, so it is part of the shape key and fp32 and bf16 members never
share a vectorised group (they train as separate groups of one round). fp32 groups run exactly as above. For a bf16
group, autocast cannot simply be entered: it does not reach the ops under vmap (the batching rules run beneath it;
measured on CPU, torch 2.13: a vmapped ``nn.Linear`` under ``torch.autocast`` returns float32). So the vectorised copy
spells autocast out: Linear and Conv1d round their operands to bfloat16, compute in float32 (products of bfloat16
numbers are exact in float32, and the sums are float32 as in a bfloat16 kernel), add the bias and round the output
to bfloat16 once -- what the solo bfloat16 kernels compute; a batched bf16 matmul plus a separate bias add would
round twice and differ from the solo run in about a third of the logits. LayerNorm and BatchNorm take bfloat16
inputs the way the solo mixed-type kernels do (float32 arithmetic, output in the input's dtype), and dropout noise
is drawn in bfloat16 as ``F.dropout`` draws it on a bfloat16 input. The forward pass is then bit-identical to the
solo autocast forward (same weights, all five test shapes, train and eval mode). The float32 arithmetic does not
use bfloat16 kernels, so a bf16 member gets bf16's numerics, not its speed (its ``latency_ms`` is measured on the
solo model under autocast, as the solo recipe measures it). Companion independence holds bit for bit as for fp32.
Batched vs solo, bf16 (MNIST-1D 256 training rows, 64 validation rows, batch 50, 3 epochs, the shapes of
``tests/trainers/test_batched.py``, 10 configurations): within 2.4e-7 for mlp norm none and cnn norm none, as fp32.
With a norm layer, its backward and the summation order of the gradients differ at float32 level as above, and a
value near a bfloat16 rounding boundary turns that into a bfloat16 step: max 7.1e-4 on train_loss/val_loss, and at
most one flipped validation prediction (1.6e-2 val_accuracy); tests allow 2e-3 and one prediction. That is the size
of bf16 itself: bf16 vs fp32 solo differs by up to 3.5e-3 on the losses and two predictions in the same runs.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from trainers.hardware import device_tensor
from trainers.spec import TrialSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

# Hyperparameters that change how a network trains but not its shapes: trials differing only in these batch.
BATCHABLE = frozenset({"lr", "weight_decay", "momentum", "dropout", "label_smoothing", "augment_shift", "optimizer",
                       "schedule"})
# Built-in recipes whose model this module can build (their constructors, data statistics and training loop).
BATCHABLE_RECIPES = frozenset({"mlp", "cnn"})


def _hyperparameters(recipe: str) -> Mapping[str, Any]:
    from trainers.recipes._declarations import CNN_HYPERPARAMETERS, MLP_HYPERPARAMETERS

    return {"mlp": MLP_HYPERPARAMETERS, "cnn": CNN_HYPERPARAMETERS}[recipe]


def shape_key(recipe: str, params: Mapping[str, Any]) -> str | None:
    """A key equal for two configurations that can train in one batch: same recipe and, defaults filled in, every
    hyperparameter outside :data:`BATCHABLE` equal (width, depth, batch size, norm, ...). ``None`` when the recipe
    cannot batch, or the parameters are invalid (the solo path then reports the error). Needs no torch: the driver
    groups trials with it.

    >>> shape_key("mlp", {"lr": 0.1}) == shape_key("mlp", {"lr": 0.2, "width": 256})
    True
    >>> shape_key("mlp", {"width": 32}) == shape_key("mlp", {"width": 64}), shape_key("nas", {})
    (False, None)
    """
    if recipe not in BATCHABLE_RECIPES:
        return None
    from spaces import SpaceError
    from trainers.hyper import resolve

    try:
        hp = resolve(_hyperparameters(recipe), params)
    except SpaceError:
        return None
    fixed = {name: value for name, value in hp.items() if name not in BATCHABLE}
    return f"{recipe}:{json.dumps(fixed, sort_keys=True)}"


@dataclass
class Member:
    """One trial attempt's next epoch: ``state`` is ``None`` for epoch 1, else the state of epoch ``epoch - 1``
    (from :func:`train_epoch` or a solo ``fit_classifier`` report)."""

    key: str
    recipe: str
    spec: TrialSpec
    epoch: int
    state: Mapping | None


# --- the vectorised copy's modules ----------------------------------------------------------------------------------

def _torch_parts():
    """Modules and autograd functions of the vectorised copy; defined on first use (this module imports torch lazily)."""
    global _PARTS
    if _PARTS is not None:
        return _PARTS
    import torch
    import torch.nn.functional as F
    from torch import nn

    def row_sum(grad: torch.Tensor) -> torch.Tensor:
        # each feature's sum over all rows, as a contiguous per-row reduction: the same summation order whatever
        # else vmap stacks beside it
        return grad.reshape(-1, grad.shape[-1]).t().contiguous().sum(-1)

    class BiasAdd(torch.autograd.Function):
        """``x + bias`` with the bias gradient summed per member (see the module docstring)."""

        generate_vmap_rule = True

        @staticmethod
        def forward(x, bias):
            return x + bias

        @staticmethod
        def setup_context(ctx, inputs, output):
            pass

        @staticmethod
        def backward(ctx, grad):
            return grad, row_sum(grad)

    def rounded(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(torch.bfloat16).float()

    class Linear(nn.Linear):
        bf16 = False  # set on a bf16 member's copy (see the module docstring)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.bf16:  # autocast's linear, spelled out: bfloat16 operands, float32 sums, the output rounded once
                y = BiasAdd.apply(F.linear(rounded(x), rounded(self.weight)), rounded(self.bias))
                return y.to(torch.bfloat16)
            y = F.linear(x, self.weight)
            return y if self.bias is None else BiasAdd.apply(y, self.bias)

    class Conv1d(nn.Conv1d):
        """A bf16 member's ``nn.Conv1d``: autocast's, spelled out as :class:`Linear`'s."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self._conv_forward(rounded(x), rounded(self.weight), rounded(self.bias))
            return y.to(torch.bfloat16)

    class LayerNorm(nn.LayerNorm):
        """A bf16 member's ``nn.LayerNorm``: as the solo mixed-type kernel, in float32, the output in the input's
        dtype (vmap's rule would multiply a bfloat16 result by the float32 weight: a float32 output)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x.float()).to(x.dtype)

    class BatchNorm1d(nn.BatchNorm1d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.dtype != torch.float32:
                # a bf16 member: vmap's batch norm refuses bfloat16 inputs with float32 statistics, which the solo
                # (mixed-type) kernel takes, computing in float32 and returning the input's dtype -- so do that
                return self.forward(x.float()).to(x.dtype)
            if x.dim() == 2:  # the same per-feature statistics, through the 3-D kernel (see the module docstring)
                return super().forward(x.t().unsqueeze(0)).squeeze(0).t().contiguous()
            return super().forward(x)

    class FedDropout(nn.Module):
        """Dropout whose noise (mask already scaled by ``1 / (1 - p)``) comes in as the ``noise`` buffer, stacked
        per member by the caller; identity in eval mode."""

        def __init__(self, shape: tuple[int, ...], dtype: torch.dtype) -> None:
            super().__init__()
            self.shape = shape  # one row's shape: the noise is (batch, *shape)
            self.dtype = dtype  # the solo run's input dtype, in which F.dropout draws its noise
            self.register_buffer("noise", torch.ones(1, *shape, dtype=dtype), persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.noise if self.training else x

    _PARTS = {"Linear": Linear, "Conv1d": Conv1d, "LayerNorm": LayerNorm, "BatchNorm1d": BatchNorm1d,
              "FedDropout": FedDropout, "BiasAdd": BiasAdd}
    return _PARTS


_PARTS: dict | None = None


def _vectorisable_copy(model: nn.Module, sample: torch.Tensor, precision: str) -> nn.Module:
    """A copy of ``model`` (one member) to ``functional_call`` with stacked tensors: the same parameter and buffer
    names, Linear/BatchNorm1d swapped for their member-independent forms, Dropout for :class:`FedDropout`; for
    ``bf16``, Linear and Conv1d cast to bfloat16 as autocast would (autocast does not reach under vmap)."""
    import copy

    import torch
    from torch import nn

    from trainers.recipes._fit import precision_context

    parts = _torch_parts()
    base = copy.deepcopy(model)
    inputs: dict[str, torch.Tensor] = {}
    hooks = [module.register_forward_pre_hook(lambda m, args, name=name: inputs.__setitem__(name, args[0]))
             for name, module in base.named_modules() if isinstance(module, nn.Dropout)]
    base.eval()
    with torch.no_grad(), precision_context(sample.device, precision):  # each dropout's input as the solo run has it
        base(sample)
    for hook in hooks:
        hook.remove()
    bf16 = precision == "bf16"
    for name, module in list(base.named_modules()):
        if type(module) is nn.Linear:
            module.__class__ = parts["Linear"]  # only forward differs; parameters stay as they are
            module.bf16 = bf16
        elif type(module) is nn.Conv1d and bf16:
            module.__class__ = parts["Conv1d"]
        elif type(module) is nn.LayerNorm and bf16:
            module.__class__ = parts["LayerNorm"]
        elif type(module) is nn.BatchNorm1d:
            module.__class__ = parts["BatchNorm1d"]
        elif isinstance(module, nn.Dropout):
            parent_name, _, child = name.rpartition(".")
            parent = base.get_submodule(parent_name) if parent_name else base
            setattr(parent, child, parts["FedDropout"](tuple(inputs[name].shape[1:]), inputs[name].dtype)
                    .to(sample.device))
    return base


# --- members --------------------------------------------------------------------------------------------------------

def _build_model(recipe: str, spec: TrialSpec, hp: Mapping[str, Any]) -> nn.Module:
    """The member's model, built as the solo recipe builds it (seed first, then the constructor)."""
    import torch

    from trainers.seeding import seed_everything

    seed_everything(spec.seed, deterministic=spec.deterministic, threads=spec.threads)
    x = torch.as_tensor(spec.data.train.x).flatten(1)
    if recipe == "mlp":
        from trainers.recipes.mlp import build_mlp

        return build_mlp(x.shape[1], spec.data.num_classes, hp, x.mean(0), x.std(0))
    from trainers.recipes.cnn import Cnn1d

    return Cnn1d(spec.data.num_classes, hp, x.mean(), x.std())


class _Run:
    """One member's training objects between epochs: model (its leaves), optimiser, schedule, generators."""

    def __init__(self, member: Member) -> None:
        import torch

        from trainers.hardware import hardware_profile
        from trainers.hyper import resolve
        from trainers.recipes._fit import _optimizer, _schedule, precision_context

        spec = member.spec
        if member.recipe not in BATCHABLE_RECIPES:
            raise ValueError(f"recipe {member.recipe!r} cannot train batched (batchable: {sorted(BATCHABLE_RECIPES)})")
        if not 1 <= member.epoch <= spec.epochs:
            raise ValueError(f"{member.key}: epoch {member.epoch} is outside 1..{spec.epochs}")
        if (member.state is None) != (member.epoch == 1):
            raise ValueError(f"{member.key}: epoch {member.epoch} needs "
                             f"{'no state' if member.epoch == 1 else 'the state of epoch %d' % (member.epoch - 1)}")
        self.key, self.spec, self.recipe = member.key, spec, member.recipe
        self.hp = resolve(_hyperparameters(member.recipe), spec.params)
        saved_rng = torch.get_rng_state()
        self.device = torch.device(spec.device)
        self.model = _build_model(member.recipe, spec, self.hp).to(self.device)
        # Solo dropout draws from the global RNG, which after the build is exactly here: continue that stream.
        self.dropout_generator = torch.Generator().manual_seed(0)
        self.dropout_generator.set_state(torch.get_rng_state())
        torch.set_rng_state(saved_rng)  # leave the process's RNG as it was
        n = len(spec.data.train)
        self.batch_size = min(self.hp["batch_size"], n)
        self.steps_per_epoch = math.ceil(n / self.batch_size)
        self.optimizer = _optimizer(self.model, self.hp)
        self.schedule = _schedule(self.optimizer, self.hp, self.steps_per_epoch * spec.epochs)
        self.generator = torch.Generator().manual_seed(spec.seed)
        if member.state is not None:
            self.load(member.state)
        sample = torch.as_tensor(spec.data.train.x[:1]).to(self.device)
        with precision_context(self.device, self.hp["precision"]):  # latency as the solo recipe measures it
            self.profile = hardware_profile(self.model, sample)
        self.epoch = member.epoch - 1
        self.last_state: Mapping | None = member.state

    def load(self, state: Mapping) -> None:
        import copy

        # copies: Optimizer.load_state_dict keeps the given moment tensors and would update the caller's state in place
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.schedule.load_state_dict(copy.deepcopy(state["schedule"]))
        self.generator.set_state(state["generator"])
        self.dropout_generator.set_state(state["torch_rng"])

    def state(self) -> dict:
        """``fit_classifier``'s state layout, copied: later epochs must not change what was returned."""
        import copy

        import torch

        state = {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "schedule": copy.deepcopy(self.schedule.state_dict()),
            "generator": self.generator.get_state(),
            "torch_rng": self.dropout_generator.get_state(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def dropout_noise(self, base: nn.Module, rows: int) -> dict[str, torch.Tensor]:
        """This step's noise for each dropout of ``base``, drawn in forward order as ``F.dropout`` draws it."""
        import torch

        parts = _torch_parts()
        noise = {}
        for name, module in base.named_modules():
            if isinstance(module, parts["FedDropout"]):
                p = self.hp["dropout"]
                shape = (rows, *module.shape)
                if p == 0:  # F.dropout draws nothing at p = 0
                    mask = torch.ones(shape, dtype=module.dtype)
                else:  # in the dtype F.dropout draws in (bf16 members: bfloat16, as the scale 1 / (1 - p) rounds)
                    mask = (torch.empty(shape, dtype=module.dtype)
                            .bernoulli_(1 - p, generator=self.dropout_generator).div_(1 - p))
                noise[f"{name}.noise"] = mask.to(self.device)
        return noise


def _group_key(member: Member) -> tuple:
    spec = member.spec
    return (shape_key(member.recipe, spec.params), id(spec.data), spec.device, spec.threads, spec.deterministic)


class BatchTrainer:
    """:func:`train_epoch` with a cache: a member whose ``state`` is the very state this trainer returned for it
    last call continues with its live model and optimiser instead of rebuilding them from the state (the same
    result, bit for bit; the cache only saves the rebuild). The cache keeps the members of the last call only."""

    def __init__(self, cache: bool = True) -> None:
        self.cache = cache
        self._runs: dict[str, _Run] = {}

    def _run_for(self, member: Member) -> _Run:
        run = self._runs.get(member.key)
        if (run is not None and member.state is not None and run.last_state is member.state
                and run.epoch == member.epoch - 1 and run.spec is member.spec):
            return run
        return _Run(member)

    def train_epoch(self, members: Sequence[Member]) -> list[tuple[dict[str, float], dict] | Exception]:
        """See :func:`train_epoch`."""
        if len({m.key for m in members}) != len(members):
            raise ValueError("member keys must be unique")
        for member in members:
            if shape_key(member.recipe, member.spec.params) is None:
                raise ValueError(f"{member.key}: recipe {member.recipe!r} with these params cannot train batched")
        results: list = [None] * len(members)
        runs: list = [None] * len(members)
        groups: dict[tuple, list[int]] = {}
        for i, member in enumerate(members):
            try:  # a member that cannot be built (e.g. a state it cannot load) fails alone
                runs[i] = self._run_for(member)
            except Exception as err:  # noqa: BLE001 - its outcome, not its companions'
                results[i] = err
                continue
            groups.setdefault(_group_key(member), []).append(i)
        for indices in groups.values():
            try:
                outcomes = _train_group([runs[i] for i in indices])
            except Exception as err:  # noqa: BLE001 - a group that fails (out of memory, say) fails its members only
                outcomes = [err] * len(indices)
            for i, outcome in zip(indices, outcomes):
                results[i] = outcome
        self._runs = {m.key: r for m, r in zip(members, runs) if r is not None} if self.cache else {}
        return results


def train_epoch(members: Sequence[Member]) -> list[tuple[dict[str, float], dict] | FloatingPointError]:
    """Train every member one epoch (each at its own epoch), vectorising members of equal :func:`shape_key` (and the
    same data object, device, threads and determinism); members of different shapes never share a batch.

    Returns, per member in order, ``(metrics, state)``: the metrics ``fit_classifier`` reports for that epoch
    (``train_loss``, ``val_loss``/``val_accuracy`` while a validation split exists, ``epoch_time_s`` -- the wall
    time of the member's whole batch --, the hardware profile) and a state in ``fit_classifier``'s layout that a
    solo run (or a later call) resumes from. A member whose training loss is not finite gets, in place of its
    tuple, the ``FloatingPointError`` the solo run would raise, so its companions' epoch is not lost; a member that
    cannot be built gets its error, and a group whose epoch fails gives each of its members the error — members of
    other groups train on.
    """
    return BatchTrainer(cache=False).train_epoch(members)


# --- one vectorised group -------------------------------------------------------------------------------------------

def _smoothed_cross_entropy(logits: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Per-member mean cross-entropy of ``logits`` (K, batch, classes) with per-member label smoothing ``eps`` (K,),
    as ``F.cross_entropy`` computes it: ``(1 - eps) * nll + eps / classes * (-sum of log-probabilities)``."""
    import torch

    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(-1)
    smooth = -logp.sum(-1).mean(-1)
    return (1 - eps) * nll + smooth * (eps / logits.shape[-1])


def _train_group(runs: list[_Run]) -> list:
    import torch
    from torch.func import functional_call, vmap

    from trainers.recipes._fit import _EVAL_BATCH, _shift

    lead = runs[0]
    spec, device = lead.spec, lead.device
    torch.use_deterministic_algorithms(spec.deterministic)
    torch.set_num_threads(spec.threads)
    started = time.perf_counter()
    x_train = device_tensor(spec.data.train.x, device)  # on the GPU once per worker, not per epoch
    y_train = device_tensor(spec.data.train.y, device)
    base = _vectorisable_copy(lead.model, x_train[:1], lead.hp["precision"])  # precision is part of the shape key
    # A lone member gets a detached ghost copy of itself: K = 1 runs other kernels than K >= 2.
    slots = runs + [runs[0]] if len(runs) == 1 else runs
    k = len(runs)
    param_names = [name for name, _ in base.named_parameters()]
    buffer_names = [name for name, _ in lead.model.named_buffers()]
    members_params = [dict(run.model.named_parameters()) for run in runs]
    with torch.no_grad():
        buffers = {name: torch.stack([dict(run.model.named_buffers())[name] for run in slots]).clone()
                   for name in buffer_names}
    eps = torch.tensor([run.hp["label_smoothing"] for run in slots], dtype=torch.float32, device=device)

    def forward(tensors: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, tensors, (x,))

    batched = vmap(forward)
    n = len(spec.data.train)
    batch_size, steps = lead.batch_size, lead.steps_per_epoch
    base.train()
    orders = [torch.randperm(n, generator=run.generator).to(device) for run in runs]
    loss_sums = [0.0] * k
    for step in range(steps):
        xs, ys, noise = [], [], []
        for run, order in zip(runs, orders):
            index = order[step * batch_size:(step + 1) * batch_size]
            x = x_train[index]
            if run.hp["augment_shift"] and x.ndim == 2:
                x = _shift(x, run.hp["augment_shift"], run.generator)
            xs.append(x)
            ys.append(y_train[index])
            noise.append(run.dropout_noise(base, len(index)))
        rows = len(ys[0])
        if len(slots) > k:
            xs, ys, noise = xs + xs[:1], ys + ys[:1], noise + noise[:1]
        params = {name: torch.stack([p[name] for p in members_params]
                                    + [members_params[0][name].detach()] * (len(slots) - k))
                  for name in param_names}
        stacked_noise = {name: torch.stack([member[name] for member in noise]) for name in noise[0]}
        logits = batched({**params, **buffers, **stacked_noise}, torch.stack(xs))
        losses = _smoothed_cross_entropy(logits.float(), torch.stack(ys), eps)  # float32 loss, as the solo loop
        for run in runs:
            run.optimizer.zero_grad(set_to_none=True)
        losses[:k].sum().backward()
        for run in runs:
            run.optimizer.step()
            run.schedule.step()
        for i, loss in enumerate(losses[:k].tolist()):
            loss_sums[i] += loss * rows
    with torch.no_grad():
        for i, run in enumerate(runs):  # BatchNorm's running statistics, updated in the stacked buffers
            for name, buf in run.model.named_buffers():
                buf.copy_(buffers[name][i])

    scores = _evaluate(base, batched, runs, slots, param_names, buffers, _EVAL_BATCH)
    elapsed = time.perf_counter() - started
    results: list = []
    for i, run in enumerate(runs):
        run.epoch += 1
        metrics = {"train_loss": loss_sums[i] / n}
        if scores is not None:
            metrics.update(val_loss=scores[i][0], val_accuracy=scores[i][1])
        metrics["epoch_time_s"] = elapsed
        metrics.update(run.profile)
        if not math.isfinite(metrics["train_loss"]):
            run.last_state = None
            results.append(FloatingPointError(f"training diverged at epoch {run.epoch}: "
                                              f"train_loss={metrics['train_loss']}"))
            continue
        state = run.state()
        run.last_state = state
        results.append((metrics, state))
    return results


def _evaluate(base, batched, runs, slots, param_names, buffers, chunk) -> list[tuple[float, float]] | None:
    """Validation loss and accuracy of every member, vectorised as training is; as ``TorchClassifier.evaluate``."""
    import torch

    val = runs[0].spec.data.val
    if val is None:
        return None
    device, k = runs[0].device, len(runs)
    base.eval()
    x_all = device_tensor(val.x, device)
    y_all = device_tensor(val.y, device)
    totals, correct = [0.0] * k, [0] * k
    with torch.no_grad():
        params = {name: torch.stack([dict(run.model.named_parameters())[name] for run in slots])
                  for name in param_names}
        for start in range(0, len(val), chunk):
            x = x_all[start:start + chunk]
            y = y_all[start:start + chunk]
            logits = batched({**params, **buffers}, x.unsqueeze(0).expand(len(slots), *x.shape)).float()
            logp = torch.log_softmax(logits, dim=-1)
            nll = -logp.gather(-1, y.expand(len(slots), -1).unsqueeze(-1)).squeeze(-1)
            for i, (loss, hits) in enumerate(zip(nll.sum(-1)[:k].tolist(),
                                                 (logits.argmax(-1) == y).sum(-1)[:k].tolist())):
                totals[i] += loss
                correct[i] += hits
    count = max(len(val), 1)
    return [(totals[i] / count, correct[i] / count) for i in range(k)]


def train_alone(recipe: str):
    """Recipe ``recipe`` trained through the vectorised path with no companions: a batched trial replayed bit for bit
    (its results do not depend on who shared its batches). Returns a ``train(spec, reporter)`` recipe; it resumes
    from ``reporter.restore()`` like any recipe, and returns no evaluator (``hypernas test`` retrains the winner with
    the solo recipe)."""
    if recipe not in BATCHABLE_RECIPES:
        raise ValueError(f"recipe {recipe!r} cannot train batched (only {sorted(BATCHABLE_RECIPES)})")

    def train(spec: TrialSpec, reporter: Any) -> None:
        restored = reporter.restore()
        epoch, state = restored if restored is not None else (0, None)
        trainer = BatchTrainer()
        for epoch in range(epoch + 1, spec.epochs + 1):
            (outcome,) = trainer.train_epoch([Member(f"alone/{spec.trial_number}", recipe, spec, epoch, state)])
            if isinstance(outcome, BaseException):
                raise outcome
            metrics, state = outcome
            reporter.report(epoch, metrics, state)
        return None

    return train
