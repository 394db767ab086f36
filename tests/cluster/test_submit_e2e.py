"""From laptop to cluster, for real: `ray start` (token auth) head + worker on 127.0.0.1, `mlflow server` on
127.0.0.1, the quickstart submitted with `ray job submit` (and with `hypernas submit`), then everything this test
started is stopped by process group."""

from __future__ import annotations

import json
import os
import subprocess

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT
from tests.servers import BIN, MlflowServer, RayNodes

SHORT = ["--set", "budget.trials=4", "--set", "scheduler.max_epochs=3", "--set", "scheduler.grace_period=1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    mlflow, nodes = MlflowServer(folder / "mlflow"), None
    try:
        mlflow.start()
        # The head offers no CPU: every trial must be placed on the worker node, never next to the job's driver
        # (with a CPU each, two trials that happen not to overlap may both run on the head).
        nodes = RayNodes(head_cpus=0)
        nodes.add_worker(cpus=2)
        nodes.wait_ready(nodes=2)
        yield nodes, mlflow, folder
    finally:
        if nodes is not None:
            nodes.stop()
        mlflow.stop()


def children_of_latest_parent(mlflow: MlflowServer, experiment: str):
    client = MlflowClient(mlflow.uri)
    found = client.get_experiment_by_name(experiment)
    parents = client.search_runs([found.experiment_id], "tags.`hypernas.role` = 'experiment'",
                                 order_by=["attributes.start_time DESC"])
    parent = parents[0]
    children = client.search_runs([found.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return client, parent, children


def test_ray_job_submit_runs_the_quickstart_on_the_cluster(cluster):
    nodes, mlflow, folder = cluster
    runtime_env = {"working_dir": str(ROOT), "excludes": [".git", ".venv", ".whl", "hypernas-runs"],
                   "env_vars": {"MLFLOW_TRACKING_URI": mlflow.uri}}
    done = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", nodes.job_address,
         "--runtime-env-json", json.dumps(runtime_env), "--",
         "hypernas", "run", "examples/quickstart.yaml", "--workdir", str(folder / "w"), *SHORT],
        env=nodes.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    # the job joined the cluster it runs on (it never starts a local Ray): both nodes are listed
    assert "ray: Ray cluster at" in done.stdout and ": 2 nodes, 2 CPUs" in done.stdout

    client, parent, children = children_of_latest_parent(mlflow, "quickstart")
    assert parent.info.status == "FINISHED" and parent.data.tags["hypernas.state"] == "FINISHED"
    assert sorted(int(c.data.tags["hypernas.trial_number"]) for c in children) == [0, 1, 2, 3]
    assert all(c.data.tags["hypernas.state"] in ("COMPLETE", "PRUNED") for c in children)
    assert "trials.parquet" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    nodes_used = {row["node"].rsplit("/", 1)[-1]
                  for row in pq.read_table(folder / "w" / "quickstart" / "trials.parquet").to_pylist()}
    head = nodes.head_node_id()
    assert len(nodes_used) == 1 and not head.startswith(nodes_used.pop())  # on the worker, not the driver's node


def test_hypernas_submit_waits_and_exits_with_the_job_result(cluster):
    nodes, mlflow, folder = cluster
    env = dict(nodes.env, MLFLOW_TRACKING_URI=mlflow.uri)
    done = subprocess.run(
        [str(BIN / "hypernas"), "submit", "examples/quickstart.yaml", "--address", nodes.job_address, "--wait",
         "--name", "submitted", "--workdir", str(folder / "w2"), *SHORT, "--set", "budget.trials=2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "submitted job raysubmit_" in done.stdout and "SUCCEEDED" in done.stdout
    assert "best trial" in done.stdout  # the job's own output, streamed
    _, parent, children = children_of_latest_parent(mlflow, "submitted")
    assert parent.info.status == "FINISHED" and len(children) == 2

    bad = subprocess.run(
        [str(BIN / "hypernas"), "submit", "examples/quickstart.yaml", "--address", nodes.job_address, "--wait",
         "--name", "failing", "--workdir", str(folder / "w3"), "--set", "resources.gpus=1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1 and "FAILED" in bad.stdout  # the job's failure is the command's exit code
    assert "each trial needs CPU=1, GPU=1; the cluster has 0 GPU" in bad.stdout
