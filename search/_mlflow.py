"""The MLflow adapter — the only module of hypernas that imports mlflow.

One parent run per experiment, one nested child run per trial (``mlflow.parentRunId``). All writes go through
one background thread in the driver: the Tune loop never waits on the tracking store, metrics are sent in
batches (``log_batch``), and trials running on other nodes need no MLflow access at all.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in our output
# MLflow's HTTP client would retry an unreachable server for minutes per call; we retry with our own backoff,
# go offline after that, and back-fill later from our records (see ``backfill``).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating initial MLflow database tables"
logging.getLogger("alembic").setLevel(logging.WARNING)

PARENT_ID_TAG = "mlflow.parentRunId"
_MAX_METRICS, _MAX_PARAMS, _MAX_TAGS = 1000, 100, 100  # MLflow's log_batch limits
_PARAM_MAX_LEN = 6000
_FLUSH_EVERY_S = 2.0
_RETRIES = (0.5, 1.0, 2.0, 4.0)
_OFFLINE_PROBE_S = 10.0  # while the store is unreachable, one write is tried this often; the rest are skipped

# hypernas trial state -> MLflow run status (pruning is a normal end of a trial, not a failure)
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAILED": "FAILED", "STALLED": "FAILED",
              "PREEMPTED": "KILLED"}


def resolve_tracking_uri(configured: str | None, workdir: Path) -> str:
    """``tracking.uri`` from the YAML, else ``MLFLOW_TRACKING_URI``, else the workdir's SQLite file."""
    if configured:
        return configured
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(workdir / 'mlflow.db').resolve()}"


def default_artifact_location(uri: str, workdir: Path) -> str | None:
    """Artifacts beside the SQLite file for local stores; a server decides for itself."""
    if uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri:
        return (workdir / "mlartifacts").resolve().as_uri()
    return None


def client_for(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of MLflow experiment ``name``, created (or restored from deleted) when needed."""
    found = client.get_experiment_by_name(name)
    if found is None:
        return client.create_experiment(name, artifact_location=artifact_location)
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    return found.experiment_id


def _clip(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _PARAM_MAX_LEN else text[: _PARAM_MAX_LEN - 1] + "…"


def _text_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tag values as text (a REST tracking server accepts nothing else)."""
    return {k: _clip(v) for k, v in tags.items() if v is not None}


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def log_batch(client: MlflowClient, run_id: str, metrics: list[Metric] = (), params: Mapping[str, Any] = {},
              tags: Mapping[str, Any] = {}) -> None:
    """``log_batch`` split to MLflow's per-call limits."""
    param_list = [Param(k, _clip(v)) for k, v in params.items()]
    tag_list = [RunTag(k, _clip(v)) for k, v in tags.items()]
    for chunk in _chunks(list(metrics), _MAX_METRICS):
        client.log_batch(run_id, metrics=chunk)
    for chunk in _chunks(param_list, _MAX_PARAMS):
        if chunk:
            client.log_batch(run_id, params=chunk)
    for chunk in _chunks(tag_list, _MAX_TAGS):
        if chunk:
            client.log_batch(run_id, tags=chunk)


@dataclass
class _Pending:
    run_id: str | None = None
    metrics: list[Metric] = field(default_factory=list)


class TrackingWriter:
    """Writes one experiment to MLflow from a background thread.

    ``start()`` creates the parent run synchronously (so a broken tracking URI fails before any trial runs);
    every later call only enqueues work. A write that still fails after retries with backoff puts the writer
    offline: later writes are skipped (counted in ``dropped``) except one probe every few seconds, until the
    store answers again. Nothing is lost for good — the experiment's own records are complete, and
    :func:`backfill` writes whatever MLflow is missing. ``close()`` flushes everything and ends the parent run.
    """

    def __init__(self, uri: str, experiment: str, artifact_location: str | None) -> None:
        self.uri = uri
        self.client = client_for(uri)
        self.experiment_name = experiment
        self.experiment_id = experiment_id(self.client, experiment, artifact_location)
        self.parent_run_id: str | None = None
        self._queue: "queue.Queue[Callable[[], None] | None]" = queue.Queue()
        self._trials: dict[int, _Pending] = {}  # open trials: run id and metrics not yet sent
        self._run_ids: dict[int, str] = {}  # every trial's child run, open or ended
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        self.dropped = 0
        self._offline_until = 0.0

    # -- driver-side API (non-blocking after start) ---------------------------------------------------------------
    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any],
              texts: Mapping[str, str], resume_run_id: str | None = None) -> str:
        if resume_run_id:
            self.parent_run_id = resume_run_id
            self.client.update_run(resume_run_id, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, tags=_text_tags(tags), run_name=run_name)
            self.parent_run_id = run.info.run_id
            log_batch(self.client, self.parent_run_id, params=params)
            for name, text in texts.items():
                self.client.log_text(self.parent_run_id, text, name)
        self._thread = threading.Thread(target=self._loop, name="hypernas-mlflow", daemon=True)
        self._thread.start()
        return self.parent_run_id

    def trial_started(self, number: int, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        with self._lock:
            self._trials[number] = _Pending()

        def op() -> None:
            run = self.client.create_run(
                self.experiment_id, run_name=run_name, tags=_text_tags({PARENT_ID_TAG: self.parent_run_id, **tags}),
            )
            log_batch(self.client, run.info.run_id, params=params)
            with self._lock:
                self._trials[number].run_id = run.info.run_id
                self._run_ids[number] = run.info.run_id
        self._queue.put(op)

    def adopt(self, number: int, run_id: str) -> None:
        """Continue writing to an existing child run (a resumed experiment's trial)."""
        with self._lock:
            self._trials[number] = _Pending(run_id)
            self._run_ids[number] = run_id

    def trial_discarded(self, number: int) -> None:
        """Delete a trial's child run: the trial will never run (see ``Monitor.finish``)."""
        def op() -> None:
            with self._lock:
                self._trials.pop(number, None)
                run_id = self._run_ids.pop(number, None)
            if run_id is not None:
                self.client.delete_run(run_id)
        self._queue.put(op)

    def trial_metrics(self, number: int, step: int, metrics: Mapping[str, float], timestamp_ms: int) -> None:
        batch = [Metric(k, float(v), timestamp_ms, step) for k, v in metrics.items() if v == v]
        with self._lock:
            pending = self._trials.get(number)
            if pending is not None:
                pending.metrics.extend(batch)

    def trial_ended(self, number: int, state: str, tags: Mapping[str, Any], texts: Mapping[str, str] = {}) -> None:
        def op() -> None:
            with self._lock:
                pending = self._trials.pop(number, None)
            if pending is None or pending.run_id is None:
                return
            log_batch(self.client, pending.run_id, metrics=pending.metrics, tags=tags)
            for name, text in texts.items():
                self.client.log_text(pending.run_id, text, name)
            self.client.set_terminated(pending.run_id, RUN_STATUS.get(state, "FINISHED"))
        self._queue.put(op)

    def trial_notes(self, number: int, tags: Mapping[str, Any], texts: Mapping[str, str] = {}) -> None:
        """Tags and text artifacts on a trial's run, open or ended (a failed attempt, a later verdict on it)."""
        def op() -> None:
            with self._lock:
                run_id = self._run_ids.get(number)
            if run_id is None:
                return
            log_batch(self.client, run_id, tags=tags)
            for name, text in texts.items():
                self.client.log_text(run_id, text, name)
        self._queue.put(op)

    def parent_tags(self, tags: Mapping[str, Any]) -> None:
        self._queue.put(lambda: log_batch(self.client, self.parent_run_id, tags=tags))

    def parent_metrics(self, metrics: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self._queue.put(lambda: log_batch(self.client, self.parent_run_id, metrics=[
            Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and v == v]))

    def parent_artifact(self, path: Path) -> None:
        self._queue.put(lambda: self.client.log_artifact(self.parent_run_id, str(path)))

    def close(self, status: str = "FINISHED") -> None:
        """Flush everything queued, then end the parent run with ``status``."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        if self.parent_run_id is not None:
            self._retry(lambda: self.client.set_terminated(self.parent_run_id, status), "end parent run")

    # -- the writer thread ------------------------------------------------------------------------------------------
    def _flush_metrics(self) -> None:
        with self._lock:
            ready = [(p.run_id, p.metrics) for p in self._trials.values() if p.run_id and p.metrics]
            for pending in self._trials.values():
                if pending.run_id:
                    pending.metrics = []
        for run_id, metrics in ready:
            self._retry(lambda r=run_id, m=metrics: log_batch(self.client, r, metrics=m), "log metrics")

    def _loop(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                op = self._queue.get(timeout=_FLUSH_EVERY_S)
            except queue.Empty:
                op = ...
            if op is None:
                self._flush_metrics()
                return
            if op is not ...:
                self._retry(op, "write")
            if time.monotonic() - last_flush >= _FLUSH_EVERY_S:
                self._flush_metrics()
                last_flush = time.monotonic()

    def _retry(self, op: Callable[[], None], what: str) -> None:
        if self._offline_until and time.monotonic() < self._offline_until:
            self.dropped += 1  # offline: skipped now, back-filled later from the records
            return
        offline = bool(self._offline_until)
        for delay in (None,) if offline else (*_RETRIES, None):  # offline: one probe, no retries
            try:
                op()
            except (MlflowException, OSError, ConnectionError) as err:
                if delay is not None:
                    time.sleep(delay)
                    continue
                if not offline:
                    message = f"MLflow {what} failed after retries ({err}); writing goes offline, records stay complete"
                    self.errors.append(message)
                    log.warning(message)
                self._offline_until = time.monotonic() + _OFFLINE_PROBE_S
                self.dropped += 1
                return
            if offline:
                log.warning("MLflow answers again; writing resumes (`hypernas sync` back-fills what was skipped)")
            self._offline_until = 0.0
            return


@dataclass
class TrialSnapshot:
    """What MLflow should hold for one trial (built from the experiment's records)."""

    number: int
    run_name: str
    params: Mapping[str, Any]
    start_tags: Mapping[str, Any]
    curves: Mapping[int, Mapping[str, float]]  # epoch -> metrics
    timestamps_ms: Mapping[int, int]  # epoch -> when it was reported
    state: str
    end_tags: Mapping[str, Any] | None = None  # None while the trial runs


def backfill(uri: str, experiment: str, parent_run_id: str,
             trials: list[TrialSnapshot]) -> tuple[dict[int, str], dict[str, int]]:
    """Make MLflow hold every trial of ``trials``: create missing child runs, log missing per-epoch metrics, set
    final tags and statuses. Idempotent. Returns ``(trial number → child run id, counts of what was written)``."""
    client = client_for(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise MlflowException(f"MLflow experiment {experiment!r} is missing at {uri}")
    existing: dict[int, Any] = {}
    for run in find_runs(uri, experiment, parent_run_id):
        number = run.data.tags.get("hypernas.trial_number")
        if number is not None and int(number) not in existing:
            existing[int(number)] = run
    ids, counts = {}, {"runs_created": 0, "metrics_added": 0, "runs_closed": 0}
    for trial in trials:
        run = existing.get(trial.number)
        if run is None:
            created = client.create_run(found.experiment_id, run_name=trial.run_name,
                                        tags=_text_tags({PARENT_ID_TAG: parent_run_id, **trial.start_tags}))
            log_batch(client, created.info.run_id, params=trial.params)
            run_id, status = created.info.run_id, "RUNNING"
            counts["runs_created"] += 1
        else:
            run_id, status = run.info.run_id, run.info.status
        ids[trial.number] = run_id
        keys = {key for metrics in trial.curves.values() for key in metrics}
        have = {(key, point.step) for key in keys for point in client.get_metric_history(run_id, key)}
        missing = [Metric(key, float(value), trial.timestamps_ms.get(epoch, 0), epoch)
                   for epoch, metrics in sorted(trial.curves.items()) for key, value in metrics.items()
                   if (key, epoch) not in have and value == value]
        log_batch(client, run_id, metrics=missing)
        counts["metrics_added"] += len(missing)
        if trial.end_tags is not None:
            log_batch(client, run_id, tags=trial.end_tags)
            if status == "RUNNING":
                client.set_terminated(run_id, RUN_STATUS.get(trial.state, "FINISHED"))
                counts["runs_closed"] += 1
    return ids, counts


def finish_parent(uri: str, run_id: str, status: str) -> None:
    client = client_for(uri)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, status)


def upload_artifacts(uri: str, run_id: str, paths: list[Path]) -> None:
    client = client_for(uri)
    for path in paths:
        client.log_artifact(run_id, str(path))


def find_runs(uri: str, experiment: str, parent_run_id: str) -> list:
    """Child runs of ``parent_run_id`` (used by ``status``/tests); empty when the experiment is unknown."""
    client = client_for(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], filter_string=f"tags.`{PARENT_ID_TAG}` = '{parent_run_id}'",
                              max_results=50000)


def read_text_artifact(client: MlflowClient, run_id: str, path: str) -> str:
    """The text of artifact ``path`` of run ``run_id``."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hypernas-artifact-") as folder:
        return Path(client.download_artifacts(run_id, path, folder)).read_text()


def log_to_run(uri: str, run_id: str, *, metrics: Mapping[str, float] = {}, step: int = 0,
               params: Mapping[str, Any] = {}, tags: Mapping[str, Any] = {}, texts: Mapping[str, str] = {}) -> None:
    """Synchronous one-off logging to an existing run (``hypernas test`` writes its audit this way)."""
    client = client_for(uri)
    now = int(time.time() * 1000)
    log_batch(client, run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()], params=params,
              tags=tags)
    for name, text in texts.items():
        client.log_text(run_id, text, name)


__all__ = ["TrackingWriter", "default_artifact_location", "find_runs", "log_to_run",
           "resolve_tracking_uri"]
