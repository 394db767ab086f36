"""``hypernas submit``: an experiment as a Ray job (the Ray Job Submission client, with the working dir and
runtime env set up for the user)."""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from pathlib import Path
from typing import Sequence, TextIO

from ray.job_submission import JobStatus, JobSubmissionClient

# Never shipped with a job: environments, results, build outputs, VCS data.
EXCLUDES = [".git", ".venv", "venv", ".whl", "hypernas-runs", "mlruns", "mlartifacts", "__pycache__", "*.egg-info",
            ".pytest_cache"]
# Passed on to the job when set here, so the cluster logs where the submitter expects.
FORWARDED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
                 "MLFLOW_TRACKING_PASSWORD")


def submit(address: str, config: Path, working_dir: Path, run_args: Sequence[str], *, wait: bool,
           stream: TextIO) -> int:
    """Submit ``hypernas run CONFIG ...`` as a job; with ``wait``, stream its logs and return its exit code."""
    client = JobSubmissionClient(address)
    entrypoint = shlex.join(["hypernas", "run", config.as_posix(), *run_args])
    runtime_env = {
        "working_dir": str(working_dir),
        "excludes": EXCLUDES,
        "env_vars": {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ},
    }
    job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
    stream.write(f"submitted job {job_id} to {address}: {entrypoint}\n")
    stream.flush()
    if not wait:
        stream.write(f"follow it with: ray job logs --follow --address {address} {job_id}\n")
        return 0
    asyncio.run(_follow(client, job_id, stream))
    status = client.get_job_status(job_id)
    while status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        time.sleep(0.5)  # the log stream can end a moment before the status is final
        status = client.get_job_status(job_id)
    stream.write(f"job {job_id}: {status.value}\n")
    return 0 if status == JobStatus.SUCCEEDED else 1


async def _follow(client: JobSubmissionClient, job_id: str, stream: TextIO) -> None:
    async for lines in client.tail_job_logs(job_id):
        stream.write(lines)
        stream.flush()
