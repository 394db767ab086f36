"""The Ray Tune adapter — the only package of hypernas that imports ray.

Ray Tune is the executor: trial lifecycle, resources (fractional GPUs), checkpoints, and the early-stopping
schedulers (ASHA = ``AsyncHyperBandScheduler``, ``HyperBandScheduler``, ``MedianStoppingRule``), which we only
configure. What this module adds around it:

* ``trial_entry``: the function trainable — runs a trainers recipe with a Reporter backed by ``tune.report``
  and a checkpoint per epoch;
* ``OptunaSearcher``: a Ray ``Searcher`` over our :class:`~search._optuna.AskTellStudy` that tells Optuna
  PRUNED (not COMPLETE) for trials the scheduler stopped;
* ``EventBridge``: a Tune callback that turns Tune's events into calls on an :class:`~search.monitor.Monitor`
  (records, MLflow, live view), all in the driver.
"""

from __future__ import annotations

import logging
import os

# Our own records replace Tune's per-trial JSON/CSV/TensorBoard loggers (fewer files, less overhead) ...
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# ... so Tune's end-of-run analysis finds no result.json and would warn once per trial; our records are complete.
logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
# Our live view replaces Tune's console output; its new output engine prints a banner even at verbose=0.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# A checkpoint per epoch makes Tune snapshot its state often; that is expected here, not a warning.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Token authentication is Ray 2.60's default; saying so explicitly keeps it on and silences the notice. Ray reads
# this when it is imported, hence before the import.
os.environ.setdefault("RAY_AUTH_MODE", "token")

from search._tune._cluster import describe_cluster, ensure_ray, running_local_cluster, unplaceable  # noqa: E402
from search._tune._run import run_trials  # noqa: E402

__all__ = ["describe_cluster", "ensure_ray", "run_trials", "running_local_cluster", "unplaceable"]
