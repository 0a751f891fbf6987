"""``python -m node.proxy --name NODE --server nats://...``: one node's service proxy on its own
(the agent runs the same in-process unless started with ``--no-proxy``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket

from bus.aio import stop_on_signals


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m node.proxy", description="Run a k8n node's service proxy.")
    p.add_argument("--name", default=os.environ.get("K8N_NODE_NAME") or socket.gethostname().lower())
    p.add_argument("--server", default=os.environ.get("K8N_SERVER", "nats://127.0.0.1:4222"))
    p.add_argument("--node-ip", default=None, help="address NodePorts answer on (default: the default route's source)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16")
    p.add_argument("--cleanup-on-exit", action="store_true", help="remove the nft table on a clean stop")
    p.add_argument("--log-level", default=os.environ.get("K8N_LOG_LEVEL", "INFO"))
    return p.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    from bus.client import ApiClient
    from node import nodeinfo
    from node.proxy import ServiceProxy

    stop = stop_on_signals()
    client = await ApiClient.connect(args.server, name=f"k8n-proxy-{args.name}")
    proxy = ServiceProxy(client, args.name, args.node_ip or nodeinfo.host_ip(), args.cluster_cidr)
    try:
        await proxy.start()
        logging.getLogger("node.proxy").info("service proxy for %s: table ip %s", args.name, proxy.table)
        await stop.wait()
    finally:
        await proxy.stop(cleanup=args.cleanup_on_exit)
        await client.close()


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(_run(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
