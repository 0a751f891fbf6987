"""``python -m master``: the control plane (what ``k8n server`` runs) against a NATS server.

``--components`` picks what runs in this process (default: all of them); each component is an
``async run(server_url, stop)`` registered in ``master.components``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from bus import aio
from master.components import COMPONENTS


async def run(server_url: str, names: list[str]) -> None:
    stop = aio.stop_on_signals()
    async with asyncio.TaskGroup() as tg:
        for name in names:
            tg.create_task(COMPONENTS[name](server_url, stop), name=name)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="k8n server", description="Run the k8n control plane against NATS.")
    p.add_argument("--server", default=os.environ.get("K8N_SERVER", "nats://127.0.0.1:4222"),
                   help="NATS URL (default: $K8N_SERVER or nats://127.0.0.1:4222)")
    p.add_argument("--components", default=",".join(COMPONENTS),
                   help=f"comma-separated subset of: {', '.join(COMPONENTS)} (default: all)")
    p.add_argument("--log-level", default=os.environ.get("K8N_LOG_LEVEL", "INFO"))
    args = p.parse_args(argv)
    names = [n.strip() for n in args.components.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        p.error(f"unknown component(s): {', '.join(unknown)}")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        aio.run(run(args.server, names))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
