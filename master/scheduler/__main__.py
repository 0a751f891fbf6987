"""``python -m master.scheduler [--server URL] [--name NAME]``: a scheduler on its own (e.g. a second
scheduler beside the default one; pods choose it with ``spec.schedulerName``)."""

from __future__ import annotations

import argparse

from bus import aio, cmdline
from master.leaderelection import ElectionConfig
from master.scheduler.scheduler import DEFAULT_NAME, run


async def _main(server: str, name: str, election: ElectionConfig) -> None:
    stop = aio.stop_on_signals()
    await run(server, stop, name=name, election=election)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="k8n scheduler", description="Run a k8n scheduler against NATS.")
    cmdline.add_common_options(p)
    p.add_argument("--name", default=DEFAULT_NAME, help=f"schedulerName this scheduler serves (default {DEFAULT_NAME})")
    args = cmdline.parse(p, argv)
    election = cmdline.settings(p, ElectionConfig.from_options)
    cmdline.run(_main(args.server, args.name, election))


if __name__ == "__main__":
    main()
