"""What a recipe receives: one frozen ``TrialSpec``, plus a ``Reporter``; what it may return: an ``Evaluator``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

from trainers.data import SearchData, Split
from trainers.reporting import Reporter


@dataclass(frozen=True)
class TrialSpec:
    """Everything one training run needs, and nothing of the machinery running it.

    ``params`` are the sampled hyperparameters (inactive conditionals absent); ``epochs`` the number of epochs
    to train; ``seed`` the trial's derived seed; ``device`` ``"cpu"`` or ``"cuda"``; ``threads`` torch's CPU
    threads (the trial's CPU share); ``data.val`` is ``None`` in the final retrain on train+validation.
    """

    params: Mapping[str, Any]
    data: SearchData
    epochs: int
    seed: int
    device: str = "cpu"
    threads: int = 1
    deterministic: bool = True
    trial_number: int = -1


class Evaluator(Protocol):
    """A trained model that can score a split: ``evaluate(split) -> {"loss": ..., "accuracy": ...}``."""

    def evaluate(self, split: Split) -> Mapping[str, float]: ...


# A recipe (built in, or a user's ``package.module:function``): trains, reports each epoch, returns an
# Evaluator (or None, in which case ``hypernas test`` cannot score the winner and says so).
Recipe = Callable[[TrialSpec, Reporter], "Evaluator | None"]
