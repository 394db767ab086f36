"""Ray's and Tune's environment for a hypernas driver, set by an explicit :func:`configure` — never at import.

Importing ``search._tune`` (or this module) changes nothing; the driver calls ``configure()`` before ray is
imported (``run_experiment``, ``resume_experiment``, ``hypernas submit``). It sets, only where the user has not
(``setdefault``), unless noted:

* ``RAY_AUTH_MODE=token`` — token authentication is Ray 2.60's default; saying so explicitly keeps it on and
  silences the notice. Ray reads this **when it is imported**, so ``configure()`` must come first.
* ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1`` — our own records replace Tune's per-trial JSON/CSV/TensorBoard
  loggers (fewer files, less overhead). Without them Tune's end-of-run analysis finds no result.json and would
  warn once per trial, so its logger ``ray.tune.analysis.experiment_analysis`` is set to ERROR: our records are
  complete.
* ``RAY_AIR_NEW_OUTPUT=0`` — our live view replaces Tune's console output; its new output engine prints a
  banner even at verbose=0.
* ``TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S=0`` — a checkpoint per epoch makes Tune snapshot
  its state often; that is expected here, not a warning.
* ``TUNE_DISABLE_SIGINT_HANDLER=1`` (always, not a default) — Tune would replace our SIGINT handler with its
  own, which stops the run without telling us; we handle SIGINT and SIGTERM ourselves (``search.interruption``)
  and ask Tune to stop gracefully. Read by Tune at ``fit()``.

Local Ray processes that the driver starts inherit these. Calling ``configure()`` again changes nothing more.
"""

from __future__ import annotations

import logging
import os
import sys

_DEFAULTS = {
    "RAY_AUTH_MODE": "token",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}
_FORCED = {"TUNE_DISABLE_SIGINT_HANDLER": "1"}

log = logging.getLogger(__name__)


def configure() -> None:
    """Set Ray's and Tune's environment for a hypernas driver (see the module docstring). Idempotent; call it
    before ``ray`` is imported.

    >>> configure()  # doctest: +SKIP
    >>> import ray   # doctest: +SKIP
    """
    if "ray" in sys.modules and "RAY_AUTH_MODE" not in os.environ:
        log.warning("ray was imported before search._tune.configure(): RAY_AUTH_MODE=token does not apply to it")
    for name, value in _DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ.update(_FORCED)
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
