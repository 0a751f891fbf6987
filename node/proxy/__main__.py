"""``python -m node.proxy --name NODE --server nats://...``: one node's service proxy on its own
(the agent runs the same in-process unless started with ``--no-proxy``)."""

from __future__ import annotations

import argparse
import logging

from bus.roles import Identity
from bus import cmdline
from bus.aio import stop_on_signals


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m node.proxy", description="Run a k8n node's service proxy.")
    cmdline.add_node_name_option(cmdline.add_common_options(p))
    p.add_argument("--node-ip", default=None, help="address NodePorts answer on (default: the default route's source)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16")
    p.add_argument("--cleanup-on-exit", action="store_true", help="remove the nft table on a clean stop")
    return cmdline.parse(p, argv)


async def _run(args: argparse.Namespace) -> None:
    from bus.client import ApiClient
    from node import nodeinfo
    from node.proxy import ServiceProxy

    stop = stop_on_signals()
    client = await ApiClient.connect(args.server, Identity.node(args.name), name=f"k8n-proxy-{args.name}")
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
    cmdline.run(_run(args), uvloop=False)


if __name__ == "__main__":
    main()
