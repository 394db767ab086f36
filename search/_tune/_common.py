"""Names the adapter's modules share."""

from __future__ import annotations

from ray.tune.result import AUTO_RESULT_KEYS

TIME_ATTR = "epoch"  # fidelity is counted in epochs, never seconds
# Result keys that are not trial metrics: Ray's own, and the ones our reporter adds.
RESERVED_KEYS = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "epoch", "epochs", "device", "node_id", "attempt",
                                         "experiment_tag", "should_checkpoint"}
