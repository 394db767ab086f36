"""``hypernas submit``: an experiment as a Ray job (the Ray Job Submission client, with the working dir and
runtime env set up for the user).

Secrets never appear in the job's entrypoint (which Ray shows in ``ray job list``, the dashboard and its logs)
nor in what this prints: the tracking credentials of :data:`FORWARDED_ENV` and every ``--set`` item that holds a
secret (:func:`search.redaction.split_secret_overrides`) travel in the runtime env's ``env_vars``; the printed
entrypoint and the streamed job logs go through :func:`search.redaction.redact`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import time
from pathlib import Path
from typing import Sequence, TextIO

from ray.job_submission import JobStatus, JobSubmissionClient

from search.redaction import SECRET_OVERRIDES_ENV, redact, split_secret_overrides

# Never shipped with a job: environments, results, build outputs, VCS data.
EXCLUDES = [".git", ".venv", "venv", ".whl", "hypernas-runs", "mlruns", "mlartifacts", "__pycache__", "*.egg-info",
            ".pytest_cache"]
# Passed on to the job (runtime env, never the entrypoint) when set here, so the cluster logs where the submitter
# expects.
FORWARDED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
                 "MLFLOW_TRACKING_PASSWORD")
_SET = "--set="
AGENT_WAIT_S = 120.0  # how long a submission waits for the head node's job agent (it registers after ray start)
AGENT_RETRY_S = 1.0
_NO_AGENT = "No available agent"


def job_request(config: Path, working_dir: Path, run_args: Sequence[str]) -> tuple[str, dict]:
    """``(entrypoint, runtime_env)`` of the job: ``hypernas run CONFIG ...`` without any secret, which goes in the
    runtime env instead (forwarded tracking credentials, ``--set`` items holding secrets)."""
    overrides = [arg[len(_SET):] for arg in run_args if arg.startswith(_SET)]
    _, secret = split_secret_overrides(overrides)
    public_args = [arg for arg in run_args if not (arg.startswith(_SET) and arg[len(_SET):] in secret)]
    env_vars = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    if secret:
        env_vars[SECRET_OVERRIDES_ENV] = json.dumps(secret)
    runtime_env = {"working_dir": str(working_dir), "excludes": EXCLUDES, "env_vars": env_vars}
    return shlex.join(["hypernas", "run", config.as_posix(), *public_args]), runtime_env


def submit(address: str, config: Path, working_dir: Path, run_args: Sequence[str], *, wait: bool,
           stream: TextIO) -> int:
    """Submit ``hypernas run CONFIG ...`` as a job; with ``wait``, stream its logs and return its exit code."""
    client = JobSubmissionClient(address)
    entrypoint, runtime_env = job_request(config, working_dir, run_args)
    job_id = _submit_when_an_agent_answers(client, entrypoint, runtime_env, stream)
    hidden = len(json.loads(runtime_env["env_vars"].get(SECRET_OVERRIDES_ENV, "[]")))
    note = f" (and {hidden} --set item(s) holding secrets, passed in the runtime env)" if hidden else ""
    shown = redact(address)
    stream.write(redact(f"submitted job {job_id} to {shown}: {entrypoint}{note}\n"))
    stream.flush()
    if not wait:
        stream.write(f"follow it with: ray job logs --follow --address {shown} {job_id}\n")
        return 0
    asyncio.run(_follow(client, job_id, stream))
    status = client.get_job_status(job_id)
    while status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        time.sleep(0.5)  # the log stream can end a moment before the status is final
        status = client.get_job_status(job_id)
    stream.write(f"job {job_id}: {status.value}\n")
    return 0 if status == JobStatus.SUCCEEDED else 1


def _submit_when_an_agent_answers(client: JobSubmissionClient, entrypoint: str, runtime_env: dict,
                                  stream: TextIO) -> str:
    """Submit the job. Right after ``ray start`` the job server answers before the head node's job agent has
    registered with it ("No available agent to submit job, please try again later"): try again, for up to
    :data:`AGENT_WAIT_S`, as Ray asks, then give up with Ray's own error."""
    deadline, told = time.monotonic() + AGENT_WAIT_S, False
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
        except RuntimeError as err:
            if _NO_AGENT not in str(err) or time.monotonic() > deadline:
                raise
            if not told:
                stream.write("the cluster's job agent is not up yet: trying again\n")
                stream.flush()
                told = True
            time.sleep(AGENT_RETRY_S)


async def _follow(client: JobSubmissionClient, job_id: str, stream: TextIO) -> None:
    async for lines in client.tail_job_logs(job_id):
        stream.write(redact(lines))
        stream.flush()
