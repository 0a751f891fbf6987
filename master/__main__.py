"""``python -m master``: the control plane (what ``k8n server`` runs) against a NATS server.

``--components`` picks what runs in this process (default: all of them); each component is an
``async run(server_url, stop)`` registered in ``master.components``. Their settings (``K8N_<NAME>``,
``master.controllers.settings``) are read and checked before anything starts.
"""

from __future__ import annotations

import argparse
import asyncio

from bus import aio, cmdline
from master.components import COMPONENTS, Component, configure


async def run(server_url: str, components: dict[str, Component]) -> None:
    stop = aio.stop_on_signals()
    async with asyncio.TaskGroup() as tg:
        for name, component in components.items():
            tg.create_task(component(server_url, stop), name=name)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="k8n server", description="Run the k8n control plane against NATS.")
    cmdline.add_common_options(p)
    p.add_argument("--components", default=",".join(COMPONENTS),
                   help=f"comma-separated subset of: {', '.join(COMPONENTS)} (default: all)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.components.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        p.error(f"unknown component(s): {', '.join(unknown)}")
    components = cmdline.settings(p, lambda: configure(names))
    cmdline.resolve(args, p)
    cmdline.run(run(args.server, components))


if __name__ == "__main__":
    main()
