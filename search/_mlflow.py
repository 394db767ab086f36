"""The MLflow adapter — the only module of hypernas that imports mlflow.

One parent run per experiment, one nested child run per trial (``mlflow.parentRunId``). All writes go through
one background thread in the driver: the Tune loop never waits on the tracking store, metrics are sent in
batches (``log_batch``), and trials running on other nodes need no MLflow access at all.

Importing this module changes no environment variable and no logger: :func:`configure` does, before the first
MLflow client is made.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from search.redaction import NAME_MASK, redact, redactor

log = logging.getLogger(__name__)

# MLflow's settings for hypernas, set by configure() (never at import), where the user has not set them:
_DEFAULTS = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # no progress bars in our output
    # MLflow's HTTP client would retry an unreachable server for minutes per call; we retry with our own backoff,
    # go offline after that, and back-fill later from our records (see ``backfill``).
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}

PARENT_ID_TAG = "mlflow.parentRunId"
_MAX_METRICS, _MAX_PARAMS, _MAX_TAGS = 1000, 100, 100  # MLflow's log_batch limits
_PARAM_MAX_LEN = 6000
_FLUSH_EVERY_S = 2.0
_RETRIES = (0.5, 1.0, 2.0, 4.0)
_OFFLINE_PROBE_S = 10.0  # while the store is unreachable, one write is tried this often; the rest are skipped
_MAX_ERRORS = 50  # reasons kept for state.json (the counters count every write)

# hypernas trial state -> MLflow run status (pruning is a normal end of a trial, not a failure)
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAILED": "FAILED", "STALLED": "FAILED",
              "PREEMPTED": "KILLED", "INTERRUPTED": "KILLED"}  # INTERRUPTED: Ctrl-C/SIGTERM; resume continues it


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


def configure() -> None:
    """Set MLflow's environment for hypernas (``setdefault``: what the user set wins) and quiet its set-up logs.

    MLflow reads these variables on each request, so setting them before the first client is enough:
    :func:`client_for`, through which every MLflow call of hypernas goes, calls this. Idempotent.
    """
    for name, value in _DEFAULTS.items():
        os.environ.setdefault(name, value)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating initial MLflow database tables"
    logging.getLogger("alembic").setLevel(logging.WARNING)


def client_for(uri: str) -> MlflowClient:
    configure()
    _new_sqlite_store(uri)
    return MlflowClient(tracking_uri=uri)


_SQLITE = "sqlite:///"


def _new_sqlite_store(uri: str) -> None:
    """A SQLite store that does not exist yet starts as a copy of an empty one MLflow made (cached per MLflow
    version, :mod:`trainers.cache`): MLflow builds a fresh store by running every schema migration, ~0.7 s on each
    new workdir, where the copy takes milliseconds. The copy then says what MLflow itself would have written:
    the ``Default`` experiment's artifact location (``./mlruns/0`` from here) and its creation time."""
    if not uri.startswith(_SQLITE) or "?" in uri:
        return
    target = Path(uri[len(_SQLITE):])
    if target.exists() or not target.parent.is_dir():
        return  # an existing store, or one MLflow will refuse with its own error
    import mlflow
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

    from trainers.cache import cached_file

    template = cached_file(f"mlflow-{mlflow.__version__}-empty.sqlite",
                           lambda path: MlflowClient(tracking_uri=f"{_SQLITE}{path}").search_experiments(max_results=1))
    if template is None:
        return
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    staged = Path(name)  # a name of its own: threads or processes creating the same store never share it
    try:
        shutil.copyfile(template, staged)
        now = int(time.time() * 1000)
        default_root = append_to_uri_path(resolve_uri_if_local(DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH), "0")
        with contextlib.closing(sqlite3.connect(staged)) as db, db:
            db.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                       "WHERE experiment_id = 0", (default_root, now, now))
        os.link(staged, target)  # never replaces a store another process created meanwhile
    except FileExistsError:
        pass
    except (OSError, sqlite3.Error) as err:
        log.debug("no copy of the empty MLflow store for %s (%s): MLflow creates it", target, err)
    finally:
        staged.unlink(missing_ok=True)


# The experiment tag MLflow 3's UI reads for an experiment's kind (server/js: "mlflow.experimentKind"); model
# training, not GenAI, so the UI shows the runs table.
EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"


def experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of MLflow experiment ``name``, created (or restored from deleted) when needed, marked as a
    model-training experiment unless it already says what kind it is."""
    found = client.get_experiment_by_name(name)
    if found is None:
        created = client.create_experiment(name, artifact_location=artifact_location,
                                           tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
        return created
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    if EXPERIMENT_KIND_TAG not in found.tags:
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    return found.experiment_id


def ui_url(base: str, experiment_id: str | None = None) -> str:
    """Where the MLflow UI shows an experiment's runs table in its model-training view (MLflow 3.17 opens in its
    GenAI view unless the URL's ``workflowType`` says otherwise); without an id, the experiments list."""
    where = f"#/experiments/{experiment_id}/runs" if experiment_id is not None else "#/experiments"
    return f"{base.rstrip('/')}/{where}?workflowType=machine_learning"


def _clip(value: Any) -> str:
    text = redact(str(value))  # every param and tag value leaves masked (known secrets, URL passwords)
    return text if len(text) <= _PARAM_MAX_LEN else text[: _PARAM_MAX_LEN - 1] + "…"


def _text_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tag values as text (a REST tracking server accepts nothing else), secret-named ones masked."""
    return {k: _clip(v) for k, v in redact(dict(tags)).items() if v is not None}


def _masked_metrics(metrics: list[Metric]) -> list[Metric]:
    """Metric names with any known secret masked (``*`` is not allowed in a name: :data:`NAME_MASK`)."""
    mask = redactor(mask=NAME_MASK)
    return [m if (key := mask(m.key)) == m.key else Metric(key, m.value, m.timestamp, m.step) for m in metrics]


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def log_batch(client: MlflowClient, run_id: str, metrics: list[Metric] = (), params: Mapping[str, Any] = {},
              tags: Mapping[str, Any] = {}) -> None:
    """``log_batch`` split to MLflow's per-call limits."""
    param_list = [Param(k, _clip(v)) for k, v in redact(dict(params)).items()]  # secret-named values masked
    tag_list = [RunTag(k, _clip(v)) for k, v in redact(dict(tags)).items()]
    for chunk in _chunks(_masked_metrics(list(metrics)), _MAX_METRICS):
        if chunk:
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
    reports: int = 0  # trial_metrics calls whose points are in ``metrics`` (each counts as one write)


class _RunMissing(Exception):
    """A write for a trial whose child run was never created (its creation was lost): it cannot land."""


class TrackingWriter:
    """Writes one experiment to MLflow from a background thread.

    ``start()`` creates the parent run synchronously (so a broken tracking URI fails before any trial runs);
    every later call only enqueues work. A write that raises — anything, not only MLflow's errors — is retried
    with backoff; one that still fails puts the writer offline: later writes are skipped except one probe every
    few seconds, until the store answers again. The thread never ends on an error.

    Every write is counted: ``enqueued`` (handed to the writer; each ``trial_metrics`` call is one), ``landed``
    (written), ``dropped`` (failed or skipped, with the reasons in ``errors``) and ``unflushed`` (still waiting
    when ``close`` gave up). :attr:`complete` is true only when every write landed. Nothing is lost for good —
    the experiment's own records are complete, and :func:`backfill` writes whatever MLflow is missing.
    """

    def __init__(self, uri: str, experiment: str, artifact_location: str | None, *,
                 retry_delays: tuple[float, ...] = _RETRIES, offline_probe_s: float = _OFFLINE_PROBE_S) -> None:
        self.uri = uri
        self.client = client_for(uri)
        self.experiment_name = experiment
        self.experiment_id = experiment_id(self.client, experiment, artifact_location)
        self.parent_run_id: str | None = None
        self._queue: "queue.Queue[tuple[Callable[[], None], str] | None]" = queue.Queue()
        self._trials: dict[int, _Pending] = {}  # open trials: run id and metrics not yet sent
        self._run_ids: dict[int, str] = {}  # every trial's child run, open or ended
        self._lock = threading.Lock()  # guards the trial maps and the counters (the driver and the thread use both)
        self._thread: threading.Thread | None = None
        self._gave_up = threading.Event()  # close() timed out: the thread starts nothing more
        self._retry_delays = tuple(retry_delays)
        self._offline_probe_s = offline_probe_s
        self.errors: list[str] = []  # the first _MAX_ERRORS reasons a write did not land
        self.enqueued = 0
        self.landed = 0
        self.dropped = 0
        self.unflushed = 0
        self._offline_until = 0.0

    @property
    def complete(self) -> bool:
        """Whether every write handed to the writer has landed in MLflow (none failed, skipped or left queued)."""
        with self._lock:
            return self.dropped == 0 and self.unflushed == 0 and self.landed == self.enqueued

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
                self.client.log_text(self.parent_run_id, redact(text), name)
        self._thread = threading.Thread(target=self._loop, name="hypernas-mlflow", daemon=True)
        self._thread.start()
        return self.parent_run_id

    def _put(self, op: Callable[[], None], what: str) -> None:
        with self._lock:
            self.enqueued += 1
        self._queue.put((op, what))

    def trial_started(self, number: int, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        with self._lock:
            pending = self._trials[number] = _Pending()

        def op() -> None:
            if pending.run_id is None:  # a retry after a failed log_batch must not create a second run
                run = self.client.create_run(
                    self.experiment_id, run_name=run_name,
                    tags=_text_tags({PARENT_ID_TAG: self.parent_run_id, **tags}),
                )
                with self._lock:
                    pending.run_id = self._run_ids[number] = run.info.run_id
            log_batch(self.client, pending.run_id, params=params)
        self._put(op, f"create the run of trial {number}")

    def adopt(self, number: int, run_id: str) -> None:
        """Continue writing to an existing child run (a resumed experiment's trial)."""
        with self._lock:
            self._trials[number] = _Pending(run_id)
            self._run_ids[number] = run_id

    def trial_discarded(self, number: int) -> None:
        """Delete a trial's child run: the trial will never run (see ``Monitor.finish``)."""
        def op() -> None:
            with self._lock:
                run_id = self._run_ids.get(number)
            if run_id is not None:
                self.client.delete_run(run_id)
            with self._lock:
                pending = self._trials.pop(number, None)
                self._run_ids.pop(number, None)
                if pending is not None:  # its metrics have nowhere to go, by design: nothing is missing
                    self.landed += pending.reports
        self._put(op, f"delete the run of trial {number}")

    def trial_metrics(self, number: int, step: int, metrics: Mapping[str, float], timestamp_ms: int) -> None:
        batch = [Metric(k, float(v), timestamp_ms, step) for k, v in metrics.items() if v == v]
        with self._lock:
            self.enqueued += 1
            pending = self._trials.get(number)
            if pending is None:  # no open run to send them to (the trial has ended, or was never started)
                self._lost(1, f"metrics of trial {number} at epoch {step}: the trial has no open run")
                return
            pending.metrics.extend(batch)
            pending.reports += 1

    def trial_ended(self, number: int, state: str, tags: Mapping[str, Any], texts: Mapping[str, str] = {}) -> None:
        def op() -> None:
            with self._lock:
                pending = self._trials.get(number)
                if pending is None or pending.run_id is None:
                    raise _RunMissing(f"trial {number} has no MLflow run (its creation did not land)")
                # the metrics not sent yet go first; if they fail they go back (for a retry or a later flush)
                metrics, reports, pending.metrics, pending.reports = pending.metrics, pending.reports, [], 0
            if reports:
                try:
                    log_batch(self.client, pending.run_id, metrics=metrics)
                except BaseException:
                    with self._lock:
                        pending.metrics[:0], pending.reports = metrics, pending.reports + reports
                    raise
                with self._lock:
                    self.landed += reports
            log_batch(self.client, pending.run_id, tags=tags)
            for name, text in texts.items():
                self.client.log_text(pending.run_id, redact(text), name)
            self.client.set_terminated(pending.run_id, RUN_STATUS.get(state, "FINISHED"))
            with self._lock:
                if self._trials.get(number) is pending and not pending.reports:
                    del self._trials[number]
        self._put(op, f"end the run of trial {number}")

    def trial_notes(self, number: int, tags: Mapping[str, Any], texts: Mapping[str, str] = {}) -> None:
        """Tags and text artifacts on a trial's run, open or ended (a failed attempt, a later verdict on it)."""
        def op() -> None:
            with self._lock:
                run_id = self._run_ids.get(number)
            if run_id is None:
                raise _RunMissing(f"trial {number} has no MLflow run (its creation did not land)")
            log_batch(self.client, run_id, tags=tags)
            for name, text in texts.items():
                self.client.log_text(run_id, redact(text), name)
        self._put(op, f"notes on trial {number}")

    def parent_tags(self, tags: Mapping[str, Any]) -> None:
        self._put(lambda: log_batch(self.client, self.parent_run_id, tags=tags), "tag the experiment's run")

    def parent_metrics(self, metrics: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self._put(lambda: log_batch(self.client, self.parent_run_id, metrics=[
            Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and v == v]),
            "log the experiment's metrics")

    def parent_table(self, name: str, columns: Mapping[str, list]) -> None:
        """A table artifact of the parent run (MLflow's ``log_table``: the UI shows it as a table)."""
        self._put(lambda: self.client.log_table(self.parent_run_id, dict(columns), name), f"upload {name}")

    def parent_artifact(self, path: Path, folder: str | None = None) -> None:
        self._put(lambda: self.client.log_artifact(self.parent_run_id, str(path), folder), f"upload {path.name}")

    def close(self, status: str = "FINISHED", timeout_s: float | None = None) -> bool:
        """Flush everything queued and end the parent run with ``status``; return :attr:`complete`.

        With ``timeout_s`` (e.g. on SIGTERM) it waits at most that long: what has not landed by then is counted
        in ``unflushed`` (so the result is False), the writer thread starts no further write, and
        ``hypernas sync`` writes the rest later from the records.
        """
        if self._thread is not None:
            if self.parent_run_id is not None:
                parent = self.parent_run_id
                self._put(lambda: self.client.set_terminated(parent, status), "end the experiment's run")
            self._queue.put(None)
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._gave_up.set()
                with self._lock:
                    self.unflushed = self.enqueued - self.landed - self.dropped
                message = (f"MLflow writer gave up after {timeout_s:g} s with {self.unflushed} writes not flushed; "
                           "`hypernas sync` writes them from the records")
                self._note(message)
                log.warning(message)
            self._thread = None
        return self.complete

    # -- the writer thread ------------------------------------------------------------------------------------------
    def _note(self, message: str) -> str:
        """Keep ``message`` (masked: an error's text may quote a credential) for ``state.json``; return it."""
        message = redact(message)
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(message)
        return message

    def _lost(self, writes: int, why: str) -> None:
        """Count ``writes`` that will never land (caller holds the lock)."""
        self.dropped += writes
        self._note(f"MLflow write lost: {why}")

    def _flush_metrics(self, final: bool = False) -> None:
        with self._lock:
            ready = [(p.run_id, p.metrics, p.reports) for p in self._trials.values() if p.run_id and p.reports]
            for pending in self._trials.values():
                if pending.run_id:
                    pending.metrics, pending.reports = [], 0
                elif final and pending.reports:  # its run was never created: these can never be sent
                    self._lost(pending.reports, "metrics of a trial whose run was never created")
                    pending.metrics, pending.reports = [], 0
        for run_id, metrics, reports in ready:
            if self._gave_up.is_set():
                return
            self._retry(lambda r=run_id, m=metrics: log_batch(self.client, r, metrics=m), "log metrics", reports)

    def _loop(self) -> None:
        last_flush = time.monotonic()
        while not self._gave_up.is_set():
            try:
                item = self._queue.get(timeout=_FLUSH_EVERY_S)
            except queue.Empty:
                item = ...
            try:
                if item is None:
                    self._flush_metrics(final=True)
                elif item is not ...:
                    self._retry(*item)
                if item is not None and time.monotonic() - last_flush >= _FLUSH_EVERY_S:
                    self._flush_metrics()
                    last_flush = time.monotonic()
            except BaseException as err:  # noqa: BLE001 - a bug of ours must not end the writer silently
                message = f"MLflow writer error ({type(err).__name__}: {err})"
                with self._lock:
                    self.dropped += 1
                    message = self._note(message)
                log.warning(message)
            if item is None:
                return

    def _retry(self, op: Callable[[], None], what: str, writes: int = 1) -> bool:
        """Run one write: retried with backoff on any exception, then offline. True when it landed."""
        if self._offline_until and time.monotonic() < self._offline_until:
            with self._lock:
                self.dropped += writes  # offline: skipped now, back-filled later from the records
            return False
        offline = bool(self._offline_until)
        for delay in (None,) if offline else (*self._retry_delays, None):  # offline: one probe, no retries
            try:
                op()
            except _RunMissing as err:  # no retry can help, and the store is fine
                with self._lock:
                    self._lost(writes, f"{what}: {err}")
                return False
            except Exception as err:  # noqa: BLE001 - any failure, MLflow's or not, is counted, never fatal
                if delay is not None:
                    if self._gave_up.wait(delay):  # close() stopped waiting: this write stays unflushed
                        return False
                    continue
                with self._lock:
                    self.dropped += writes
                    if not offline:
                        message = (f"MLflow {what} failed after retries ({type(err).__name__}: {err}); "
                                   "writing goes offline, records stay complete")
                        log.warning(self._note(message))
                self._offline_until = time.monotonic() + self._offline_probe_s
                return False
            if offline:
                log.warning("MLflow answers again; writing resumes (`hypernas sync` back-fills what was skipped)")
            self._offline_until = 0.0
            with self._lock:
                self.landed += writes
            return True
        return False


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
    texts: Mapping[str, str] = field(default_factory=dict)  # text artifacts (a traceback, failed attempts)


def backfill(uri: str, experiment: str, parent_run_id: str,
             trials: list[TrialSnapshot]) -> tuple[dict[int, str], dict[str, int]]:
    """Make MLflow hold every trial of ``trials`` and no other: create missing child runs, log missing per-epoch
    metrics and text artifacts, set final tags and statuses, delete the runs of trials the records dropped.
    Idempotent. Returns ``(trial number → child run id, counts of what was written)``."""
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
    recorded = {trial.number for trial in trials}
    for number, run in existing.items():
        if number not in recorded:  # forgotten by the records (it will never run); the writer's delete was lost
            client.delete_run(run.info.run_id)
            counts["runs_deleted"] = counts.get("runs_deleted", 0) + 1
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
        # a run created just now holds nothing yet: no history to read (one query per metric per trial, saved)
        have = set() if run is None else {(key, point.step) for key in keys
                                          for point in client.get_metric_history(run_id, key)}
        missing = [Metric(key, float(value), trial.timestamps_ms.get(epoch, 0), epoch)
                   for epoch, metrics in sorted(trial.curves.items()) for key, value in metrics.items()
                   if (key, epoch) not in have and value == value]
        log_batch(client, run_id, metrics=missing)
        counts["metrics_added"] += len(missing)
        if trial.texts:
            have_texts = {artifact.path for artifact in client.list_artifacts(run_id)}
            for name, text in trial.texts.items():
                if name not in have_texts:
                    client.log_text(run_id, redact(text), name)
                    counts["texts_added"] = counts.get("texts_added", 0) + 1
        if trial.end_tags is not None:
            log_batch(client, run_id, tags=trial.end_tags)
            if status == "RUNNING":
                client.set_terminated(run_id, RUN_STATUS.get(trial.state, "FINISHED"))
                counts["runs_closed"] += 1
    return ids, counts


def parent_end(uri: str, run_id: str, tags: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """The experiment's final tags and metrics on its parent run (a metric only when it does not hold that value
    yet, so that repeating this adds no points)."""
    client = client_for(uri)
    held = client.get_run(run_id).data.metrics
    now = int(time.time() * 1000)
    log_batch(client, run_id, tags=tags, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()
                                                  if v is not None and v == v and held.get(k) != float(v)])


def finish_parent(uri: str, run_id: str, status: str) -> None:
    client = client_for(uri)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, status)


def log_table(uri: str, run_id: str, name: str, columns: Mapping[str, list]) -> None:
    """A table artifact of run ``run_id`` (MLflow's ``log_table``), replacing one of that name."""
    client_for(uri).log_table(run_id, dict(columns), name)


def upload_artifacts(uri: str, run_id: str, paths: list[Path], folder: str | None = None) -> None:
    client = client_for(uri)
    for path in paths:
        client.log_artifact(run_id, str(path), folder)


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
        client.log_text(run_id, redact(text), name)


__all__ = ["TrackingWriter", "default_artifact_location", "find_runs", "log_to_run",
           "resolve_tracking_uri"]
