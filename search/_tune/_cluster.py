"""Connecting to Ray: a private local instance (laptop mode) or an existing cluster."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import Any, Mapping

import ray

from search._tune._ray_internals import live_gcs_addresses, recorded_cluster_address


def running_local_cluster() -> str | None:
    """The address of a live cluster started on this machine with ``ray start``, if there is one.

    Ray records the last ``ray start`` in its temp folder but never removes the record; it counts only while
    that cluster's GCS process is still running. Other programs' private Ray instances are never joined.
    """
    started = recorded_cluster_address()
    return started if started and started in live_gcs_addresses() else None


def ensure_ray(address: str | None = None) -> bool:
    """Connect to Ray; True when this call started a private local instance (it ends with the process).

    Joins, in this order: an explicit ``address``; ``RAY_ADDRESS`` (set inside ``ray job submit``); a cluster
    started on this machine with ``ray start``. With none of them, a private local instance starts (laptop mode).
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or running_local_cluster()
    if address:
        _leave_job_working_dir()
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        return False
    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    return True


def _leave_job_working_dir() -> None:
    """Inside ``ray job submit`` the process starts in the job's unpacked working_dir, and Ray 2.60 deletes and
    re-extracts that directory when the job's workers set up their runtime env — leaving this process in a deleted
    directory (``os.getcwd()`` fails, and MLflow's local stores call it). So the entrypoint works from the temp
    folder instead; every path hypernas keeps is absolute by then, and the working_dir stays on ``sys.path``."""
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
        here = os.getcwd()
        if here not in sys.path:
            sys.path.insert(0, here)
        os.chdir(tempfile.gettempdir())


def unplaceable(request: Mapping[str, float]) -> str | None:
    """Why no node of the connected cluster could ever run a trial asking ``request`` (None: some node can).

    >>> unplaceable({"CPU": 1, "GPU": 1})  # doctest: +SKIP
    'each trial needs GPU=1; the cluster has 0 GPU'
    """
    need = {name: amount for name, amount in request.items() if amount > 0}
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if any(all(node.get(name, 0) >= amount for name, amount in need.items()) for node in nodes):
        return None
    asks = ", ".join(f"{name}={amount:g}" for name, amount in need.items())
    short = []
    for name, amount in need.items():
        total = sum(node.get(name, 0) for node in nodes)
        largest = max((node.get(name, 0) for node in nodes), default=0)
        if total == 0:
            short.append(f"the cluster has 0 {name}")
        elif largest < amount:
            short.append(f"the largest node offers {name}={largest:g}")
    reason = "; ".join(short) or "no single node offers all of them together"
    return f"each trial needs {asks}; {reason} ({len(nodes)} node{'s' if len(nodes) != 1 else ''})"


def workers_that_fit(request: Mapping[str, float]) -> int:
    """How many workers asking ``request`` each the live nodes of the cluster hold at once (at least 1: an
    unplaceable request is refused before, by :func:`unplaceable`)."""
    need = {name: amount for name, amount in request.items() if amount > 0}
    total = 0
    for node in ray.nodes():
        if node.get("Alive"):
            offers = node.get("Resources", {})
            total += min((int(offers.get(name, 0) / amount + 1e-9) for name, amount in need.items()), default=0)
    return max(1, total)


def describe_cluster(started_here: bool) -> str:
    """One line on where trials will run: a private local instance or a cluster, with its resources."""
    resources = ray.cluster_resources()
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    what = "local Ray started for this run" if started_here else \
        f"Ray cluster at {ray.get_runtime_context().gcs_address}"
    return (f"{what}: {nodes} node{'s' if nodes != 1 else ''}, {resources.get('CPU', 0):g} CPUs, "
            f"{resources.get('GPU', 0):g} GPUs")


def node_name(result: Mapping[str, Any]) -> str | None:
    """``hostname/ip/node`` of the node that produced a result: Ray fills in host and IP, our reporter the node id
    (several nodes may share a host)."""
    if not result.get("hostname"):
        return None
    node = f"/{result['node_id'][:8]}" if result.get("node_id") else ""
    return f"{result['hostname']}/{result.get('node_ip')}{node}"
