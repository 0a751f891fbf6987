"""``python -m master``: the control plane (what ``k8n server`` runs) against a NATS server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from bus import aio
from master.apiserver.server import run as run_apiserver


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="k8n server", description="Run the k8n control plane against NATS.")
    p.add_argument("--server", default=os.environ.get("K8N_SERVER", "nats://127.0.0.1:4222"),
                   help="NATS URL (default: $K8N_SERVER or nats://127.0.0.1:4222)")
    p.add_argument("--log-level", default=os.environ.get("K8N_LOG_LEVEL", "INFO"))
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        aio.run(run_apiserver(args.server))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
