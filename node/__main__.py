"""``python -m node``: the node agent (what ``k8n agent`` runs)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from bus import cmdline
from bus.aio import dump_tasks_on_sigusr1, stop_on_signals


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="k8n agent", description="Run a k8n node agent (Docker, pod networking).")
    cmdline.add_node_name_option(cmdline.add_common_options(p))
    p.add_argument("--state-dir", default=None, help="default: <data dir>/nodes/<name>")
    p.add_argument("--node-ip", default=None, help="InternalIP to report (default: the default route's source)")
    p.add_argument("--pod-cidr", default=None, help="this node's pod range (default: assigned by the control plane)")
    p.add_argument("--bridge", default=None, help="bridge name (default derived from the node name)")
    p.add_argument("--cluster-domain", default=os.environ.get("K8N_CLUSTER_DOMAIN", "cluster.local"),
                   help="DNS domain served by the node's cluster DNS and searched by pods")
    p.add_argument("--lease-seconds", type=float, default=2.0)
    p.add_argument("--status-seconds", type=float, default=10.0)
    p.add_argument("--metrics-seconds", type=float, default=10.0)
    p.add_argument("--backoff-initial", type=float, default=10.0, help="CrashLoopBackOff first delay (s)")
    p.add_argument("--backoff-max", type=float, default=300.0, help="CrashLoopBackOff cap (s)")
    p.add_argument("--pause-image", default="k8n/pause:3.9")
    p.add_argument("--drain-on-exit", action="store_true",
                   help="on a clean stop, remove this node's pod containers and networking")
    p.add_argument("--no-proxy", action="store_true", help="do not run the service proxy (run python -m node.proxy)")
    p.add_argument("--hollow", type=int, default=0, help="run N simulated nodes instead (benchmarks only)")
    return cmdline.parse(p, argv)


async def _run(args: argparse.Namespace) -> None:
    from node.agent import AgentConfig, default_state_dir, run

    stop = stop_on_signals()
    dump_tasks_on_sigusr1(logging.getLogger("node"))
    cfg = AgentConfig(
        name=args.name, server=args.server,
        state_dir=Path(args.state_dir) if args.state_dir else default_state_dir(args.name),
        node_ip=args.node_ip, pod_cidr=args.pod_cidr, bridge=args.bridge, cluster_domain=args.cluster_domain,
        lease_seconds=args.lease_seconds,
        status_seconds=args.status_seconds, metrics_seconds=args.metrics_seconds,
        backoff_initial=args.backoff_initial, backoff_max=args.backoff_max, pause_image=args.pause_image,
        drain_on_exit=args.drain_on_exit, proxy=not args.no_proxy)
    await run(cfg, stop)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.hollow:
        from node.hollow import main as hollow_main

        hollow_main(["--server", args.server, "--log-level", args.log_level, "--count", str(args.hollow)])
        return
    # the standard loop: pyroute2's netlink sockets need datagram endpoints uvloop lacks
    cmdline.run(_run(args), uvloop=False)


if __name__ == "__main__":
    main()
