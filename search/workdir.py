"""Where an experiment lives: ``<workdir>/<name>/`` and the small JSON state file that ties it to MLflow."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from search.seeds import derive_seed
from search.config import (
    ConfigError,
    ExperimentConfig,
    RecordSettings,
    config_from_dict,
    read_config_file,
    record_settings,
    validate_name,
)

DEFAULT_WORKDIR = "hypernas-runs"


@dataclass(frozen=True)
class ExperimentFolder:
    """Paths of one experiment's folder. Nothing here touches the disk until asked. ``name`` is checked with
    :func:`~search.config.validate_name` (a :class:`ConfigError` otherwise), so the folder is always directly
    inside ``workdir``."""

    workdir: Path
    name: str

    def __post_init__(self) -> None:
        validate_name(self.name)

    @property
    def path(self) -> Path:
        return self.workdir / self.name

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def study_file(self) -> Path:
        return self.path / "optuna.journal"

    @property
    def audit_file(self) -> Path:
        return self.path / "test_audit.json"

    def read_audit(self) -> list[dict[str, Any]]:
        """The experiment's looks at its sealed test split (``test_audit.json``), oldest first; none: ``[]``."""
        return json.loads(self.audit_file.read_text()) if self.audit_file.is_file() else []

    @property
    def tune_dir(self) -> Path:
        return self.path / "tune"

    def exists(self) -> bool:
        return self.state_file.is_file()

    def read_state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def write_state(self, **changes: Any) -> dict[str, Any]:
        state = self.read_state() if self.state_file.exists() else {}
        state.update(changes)
        write_json_atomic(self.state_file, state)
        return state

    def record_settings(self) -> RecordSettings:
        """The saved config's metric, constraints and straggler factor, without loading its trainer or data."""
        return record_settings(read_config_file(self.config_file))

    def load_config(self) -> ExperimentConfig:
        raw = read_config_file(self.config_file)
        data = raw.get("data") if isinstance(raw, dict) else None
        if isinstance(data, dict) and data.get("source") in ("digits", "parquet") and "split_seed" not in data:
            # written before data.split_seed existed: its test rows were drawn with the experiment's data seed,
            # and must stay those rows (resume and test would otherwise score on rows the search trained on)
            raw = {**raw, "data": {**data, "split_seed": derive_seed(int(raw.get("seed", 0)), "data")}}
        return config_from_dict(raw)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def refuse_if_simulated(folder: "ExperimentFolder", verb: str, why: str) -> None:
    """``test``, ``replay`` and ``resume`` need an experiment that trained: a simulated one (``hypernas simulate``)
    is refused with a :class:`ConfigError` saying ``why``."""
    if folder.exists() and folder.read_state().get("simulated"):
        raise ConfigError("name", f"experiment {folder.name!r} was simulated (hypernas simulate) over recorded "
                                  f"curves: {why}; {verb} needs an experiment that trained (hypernas run)")


def refuse_taken_name(folder: ExperimentFolder, overwrite: bool) -> None:
    """A new experiment's folder must be free: a :class:`ConfigError` if something that is not an experiment is
    there, or an experiment and not ``overwrite``."""
    if folder.path.exists() and not folder.exists() and not folder.config_file.is_file():  # only experiments
        raise ConfigError("name", f"{folder.path} exists and is not an experiment (no state.json); choose another "
                                  "--name")
    if folder.path.exists() and not overwrite:
        raise ConfigError("name", f"experiment {folder.name!r} already exists in {folder.workdir}; choose another "
                                  "--name, or pass --overwrite to replace it")


def existing_experiment(workdir: str | Path, name: str) -> ExperimentFolder:
    """The folder of experiment ``name``; a bad or unknown name is a :class:`ConfigError` (the latter listing the
    known ones). The name is checked before any path is built from it."""
    folder = ExperimentFolder(Path(workdir), validate_name(name))
    if not folder.exists():
        root = Path(workdir)
        known = sorted(p.name for p in root.iterdir() if (p / "state.json").is_file()) if root.is_dir() else []
        hint = f" (experiments there: {', '.join(known)})" if known else " (none there yet)"
        raise ConfigError("name", f"no experiment {name!r} in workdir {root}{hint}")
    return folder


@contextlib.contextmanager
def hold_experiment(workdir: Path, name: str) -> Iterator[None]:
    """Hold experiment ``name`` of ``workdir`` for this process while the block runs: a driver (``run``,
    ``resume``), ``sync`` and ``simulate`` each hold it, so two of them never write one experiment at once (a second
    ``hypernas resume`` of a running experiment, a ``run --overwrite`` of one still running). Another holder is
    a :class:`ConfigError` naming its process; nothing is touched.

    The lock is ``fcntl.flock`` on ``<workdir>/.<name>.lock`` (beside the folder, which ``--overwrite`` replaces):
    the kernel lets it go when its process ends, however it ends, so a killed driver never leaves a stale lock.
    The file holds the holder's pid, host and start time, for the message."""
    validate_name(name)
    workdir.mkdir(parents=True, exist_ok=True)
    handle = open(workdir / f".{name}.lock", "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError("name", f"experiment {name!r} in {workdir} is in use by {holder}; wait until it "
                                      "ends (or stop it: Ctrl-C, then `hypernas resume`)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"hypernas pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime())}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
    finally:
        handle.close()  # and with it the lock
