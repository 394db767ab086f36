"""Real servers on 127.0.0.1 for tests — `mlflow server` and `ray start` nodes — each in its own process group,
stopped by that group (never `ray stop`, which would kill every Ray process on the machine)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent  # the venv's scripts: ray, hypernas


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_group(process: subprocess.Popen | None, grace_s: float = 20.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL whatever is left of it."""
    if process is None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        process.poll()  # reap the leader: a zombie leader would keep the group "alive" until the deadline
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


class MlflowServer:
    """`mlflow server` on 127.0.0.1 over a SQLite file, one worker, no job execution (the light set-up)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder, self.port, self.process = folder, port or free_port(), None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", "1", "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
                   "--artifacts-destination", str(self.folder / "artifacts")]
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "mlflow server exited"
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2)
                return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError("mlflow server did not answer")

    def stop(self) -> None:
        stop_group(self.process)
        self.process = None


class RayNodes:
    """`ray start --head` on 127.0.0.1 with token auth and its job server, plus worker nodes, each `--block`ed in
    its own process group. Scripts of this venv are on the nodes' PATH, so jobs find `hypernas`."""

    def __init__(self, head_cpus: float = 1) -> None:
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.env = dict(os.environ, RAY_AUTH_MODE="token", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        self.env.pop("RAY_ADDRESS", None)
        self.nodes: list[subprocess.Popen] = []
        # A temp folder of its own (short: Ray's socket paths must fit 107 characters). Ray's job server finds the
        # cluster a job's driver joins by the last cluster recorded in its temp folder, else any GCS on the machine:
        # in the shared /tmp/ray, another test process's Ray started meanwhile would be the one a job joins.
        self.temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
        self._start("--head", "--temp-dir", self.temp_dir, "--node-ip-address", "127.0.0.1",
                    "--port", str(self.gcs_port),
                    "--num-cpus", str(head_cpus), "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                    "--dashboard-port", str(self.dashboard_port), "--ray-client-server-port", str(free_port()))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def job_address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _start(self, *args: str) -> None:
        # Every port a node listens on is a free one: Ray's fixed defaults (the dashboard agent's 52365, the client
        # server's 10001, ...) are taken by whichever Ray on this machine started first — another test's, another
        # test process's — and the job server needs the head node's agent.
        ports = [(flag, str(free_port())) for flag in ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                                                         "--metrics-export-port", "--runtime-env-agent-port")]
        args = (*args, *(item for pair in ports for item in pair))
        self.nodes.append(subprocess.Popen([str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *args],
                                           env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True))

    def add_worker(self, cpus: float = 1) -> None:
        self._start("--address", self.address, "--num-cpus", str(cpus))

    def wait_ready(self, nodes: int, timeout_s: float = 180) -> None:
        """Until the job server answers (with the token) and ``nodes`` nodes are alive."""
        deadline = time.monotonic() + timeout_s
        while True:
            assert all(p.poll() is None for p in self.nodes), "a ray node exited"
            jobs = subprocess.run([str(BIN / "ray"), "job", "list", "--address", self.job_address], env=self.env,
                                  capture_output=True, text=True, timeout=60)
            status = subprocess.run([str(BIN / "ray"), "status", "--address", self.address], env=self.env,
                                    capture_output=True, text=True, timeout=60)
            if jobs.returncode == 0 and status.stdout.count(" node_") >= nodes:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the ray cluster did not come up: {jobs.stderr[-500:]} {status.stdout[-500:]}")
            time.sleep(1)

    def head_node_id(self) -> str:
        """The head node's id, from Ray's state API (``ray list nodes``) on the dashboard."""
        listed = subprocess.run([str(BIN / "ray"), "list", "nodes", "--address", self.job_address, "--format", "json"],
                                env=self.env, capture_output=True, text=True, timeout=60, check=True)
        return next(node["node_id"] for node in json.loads(listed.stdout) if node["is_head_node"])

    def stop(self) -> None:
        # `ray start --block` on SIGTERM takes ~20 s to wind its head node down; the test needs none of that
        for process in reversed(self.nodes):
            stop_group(process, grace_s=3.0)
        self.nodes = []
        shutil.rmtree(self.temp_dir, ignore_errors=True)
