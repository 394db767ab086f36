"""Every manifest in cluster/ loads, and holds what hypernas relies on: the entrypoint, images, resources,
ports, token auth, and services that stay inside the cluster."""

from __future__ import annotations

import shlex

import pytest
import yaml

from tests.conftest import ROOT

CLUSTER = ROOT / "cluster"
IMAGE_PREFIX = "ghcr.io/hypernas/hypernas:"


def documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((CLUSTER / name).read_text()) if doc]


def by_kind(name: str) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in documents(name)}


@pytest.mark.parametrize("name", sorted(str(p.relative_to(CLUSTER)) for p in CLUSTER.rglob("*.yaml")))
def test_every_manifest_loads(name):
    assert documents(name)


def containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def env_of(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def check_token_auth(container: dict) -> None:
    env = env_of(container)
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "ray-auth", "key": "token"}


def check_ray_cluster_spec(spec: dict) -> None:
    assert spec["rayVersion"] == "2.60.0"
    head = spec["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP" and head["rayStartParams"]["num-cpus"] == "0"
    (head_container,) = containers(head["template"])
    assert head_container["image"].startswith(IMAGE_PREFIX)
    assert {p["containerPort"] for p in head_container["ports"]} >= {6379, 8265}
    check_token_auth(head_container)
    (gpu,) = [g for g in spec["workerGroupSpecs"] if g["groupName"] == "gpu-workers"]
    (worker,) = containers(gpu["template"])
    assert worker["image"].startswith(IMAGE_PREFIX) and worker["image"].endswith("-gpu")
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1 and gpu["rayStartParams"]["num-gpus"] == "1"
    check_token_auth(worker)


def test_rayjob_runs_a_shipped_experiment_with_mlflow_on_the_cluster():
    job = by_kind("kuberay/rayjob.yaml")["RayJob"]
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:2] == ["hypernas", "run"] and (ROOT / words[2]).is_file()  # the config ships in the image
    assert words[words.index("--workdir") + 1] == "/results"
    assert yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    check_ray_cluster_spec(job["spec"]["rayClusterSpec"])
    (head,) = containers(job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"])
    assert {m["mountPath"] for m in head["volumeMounts"]} == {"/results"}
    check_token_auth(containers(job["spec"]["submitterPodTemplate"])[0])


def test_raycluster_has_a_cpu_head_and_gpu_workers():
    kinds = by_kind("kuberay/raycluster.yaml")
    check_ray_cluster_spec(kinds["RayCluster"]["spec"])
    assert kinds["PersistentVolumeClaim"]["metadata"]["name"] == "hypernas-results"


def test_mlflow_server_is_persistent_and_internal():
    kinds = by_kind("kuberay/mlflow.yaml")
    deployment, service, claim = kinds["Deployment"], kinds["Service"], kinds["PersistentVolumeClaim"]
    (container,) = containers(deployment["spec"]["template"])
    args = container["args"]
    assert args[args.index("--port") + 1] == "5000" and args[args.index("--workers") + 1] == "1"
    assert args[args.index("--backend-store-uri") + 1].startswith("sqlite:////mlflow/")
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/mlflow"}
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["ports"][0]["port"] == 5000
    assert service["metadata"]["name"] == "mlflow"  # what MLFLOW_TRACKING_URI in the Ray manifests names


def test_ray_up_config():
    (config,) = documents("ray-up.yaml")
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"]["CPU"] == 0  # the head runs the driver, not trials
    gpu = types["gpu_worker"]
    assert gpu["resources"]["GPU"] == 1 and gpu["max_workers"] <= config["max_workers"]
    assert config["docker"]["image"].startswith(IMAGE_PREFIX)
    head_start = " ".join(config["head_start_ray_commands"])
    assert "RAY_AUTH_MODE=token ray start --head" in head_start and "--dashboard-host=127.0.0.1" in head_start
    assert "mlflow server --host 127.0.0.1" in head_start
    assert all("RAY_AUTH_MODE=token" in c for c in config["worker_start_ray_commands"] if "ray start" in c)


def test_dockerfile_pins_ray_and_installs_hypernas():
    text = (CLUSTER / "Dockerfile").read_text()
    assert "FROM rayproject/ray:2.60.0-py311" in text and "pip install --no-cache-dir ." in text
    for folder in ("search", "spaces", "trainers", "examples"):
        assert f"COPY --chown=ray:users {folder} ./{folder}" in text
