"""A multi-node Ray cluster on this machine, run in its own process and driven over stdin/stdout.

Tests hold a local Ray of their own in-process, and one process cannot host two Ray instances' clients, so the
cluster (``ray.cluster_utils.Cluster``: a head and worker nodes on 127.0.0.1) lives here. Protocol: prints one
JSON line ``{"address": ..., "workers": [node ids]}``; then reads ``remove <node id>`` (kills that node at once,
answering ``removed``) or ``shutdown`` (stops every node it started and exits).

    python -m tests.local_cluster --workers 2 --worker-cpus 1 --special '{"accel": 2}'

``--special`` adds one more worker (two CPUs) that offers the given custom resources; its id is printed as
``special``.
"""

from __future__ import annotations

import argparse
import json
import sys

from search._tune import configure

configure()  # Ray's environment (token auth) before ray is imported
from ray.cluster_utils import Cluster  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-cpus", type=float, default=1)
    parser.add_argument("--special", type=json.loads, default=None)
    args = parser.parse_args()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        workers = {node.node_id: node for node in
                   (cluster.add_node(num_cpus=args.worker_cpus) for _ in range(args.workers))}
        special = cluster.add_node(num_cpus=2, resources=args.special) if args.special else None
        if special is not None:
            workers[special.node_id] = special
        cluster.wait_for_nodes()
        print(json.dumps({"address": cluster.address, "workers": [w for w in workers if not special or
                                                                  w != special.node_id],
                          "special": special.node_id if special else None}), flush=True)
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "remove":
                cluster.remove_node(workers.pop(argument), allow_graceful=False)
                print("removed", flush=True)
            elif command == "shutdown":
                break
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
