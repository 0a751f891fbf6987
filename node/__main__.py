"""``python -m node``: the node agent (what ``k8n agent`` runs)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bus import cmdline, settings
from bus.aio import dump_tasks_on_sigusr1, stop_on_signals
from node.agent import AgentConfig


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="k8n agent", description="Run a k8n node agent (Docker, pod networking).")
    cmdline.add_node_name_option(cmdline.add_common_options(p))
    p.add_argument("--state-dir", default=None, help="default: <data dir>/nodes/<name>")
    cmdline.settings(p, lambda: settings.add_flags(p, AgentConfig))
    p.add_argument("--no-proxy", action="store_true", help="do not run the service proxy (run python -m node.proxy)")
    p.add_argument("--hollow", type=int, default=0, help="run N simulated nodes instead (benchmarks only)")
    return cmdline.parse(p, argv)


def config(args: argparse.Namespace) -> AgentConfig:
    from node.agent import default_state_dir

    return AgentConfig(
        name=args.name, server=args.server,
        state_dir=Path(args.state_dir) if args.state_dir else default_state_dir(args.name),
        proxy=not args.no_proxy, **settings.values(args, AgentConfig))


async def _run(cfg: AgentConfig) -> None:
    from node.agent import run

    stop = stop_on_signals()
    dump_tasks_on_sigusr1(logging.getLogger("node"))
    await run(cfg, stop)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.hollow:
        from node.hollow import main as hollow_main

        hollow_main(["--server", args.server, "--log-level", args.log_level, "--count", str(args.hollow)])
        return
    # the standard loop: pyroute2's netlink sockets need datagram endpoints uvloop lacks
    cfg = cmdline.settings(None, lambda: config(args))  # a bad value is a usage error, not a traceback
    cmdline.run(_run(cfg), uvloop=False)


if __name__ == "__main__":
    main()
