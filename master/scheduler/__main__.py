"""``python -m master.scheduler [--server URL] [--name NAME]``: a scheduler on its own (e.g. a second
scheduler beside the default one; pods choose it with ``spec.schedulerName``)."""

from __future__ import annotations

import argparse
import logging
import os

from bus import aio
from master.scheduler.scheduler import DEFAULT_NAME, run


async def _main(server: str, name: str) -> None:
    stop = aio.stop_on_signals()
    await run(server, stop, name=name)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="k8n scheduler", description="Run a k8n scheduler against NATS.")
    p.add_argument("--server", default=os.environ.get("K8N_SERVER", "nats://127.0.0.1:4222"))
    p.add_argument("--name", default=DEFAULT_NAME, help=f"schedulerName this scheduler serves (default {DEFAULT_NAME})")
    p.add_argument("--log-level", default=os.environ.get("K8N_LOG_LEVEL", "INFO"))
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        aio.run(_main(args.server, args.name))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
