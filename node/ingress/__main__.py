"""``python -m node.ingress`` (what ``k8n ingress`` runs): one node's ingress controller on its own. It connects as
the bus identity ``ingress`` (``<creds dir>/ingress.creds``, minted by ``k8n up`` or ``k8n credentials ingress``),
runs haproxy from its state directory and serves until SIGINT/SIGTERM, then stops haproxy."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from bus import cmdline, config, settings
from bus.aio import stop_on_signals
from node.ingress.settings import IngressSettings

log = logging.getLogger("node.ingress")
DEFAULT_CERT = "default-cert.pem"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="k8n ingress", description="Run k8n's ingress controller (haproxy) on this node.")
    cmdline.add_node_name_option(cmdline.add_common_options(p))
    p.add_argument("--state-dir", default=None, help="haproxy's configuration, certificates and sockets "
                                                     "(default: <data dir>/ingress/<name>)")
    cmdline.settings(p, lambda: settings.add_flags(p, IngressSettings))
    args = cmdline.parse(p, argv)
    args.settings = cmdline.settings(p, lambda: IngressSettings(**settings.values(args, IngressSettings)))
    return args


def default_cert(state_dir: Path) -> bytes:
    """The self-signed certificate served to SNI names without one, made once and kept in the state directory (so
    clients that pinned it keep seeing the same one across restarts)."""
    from bus.files import write_private
    from node.ingress.tls import self_signed_pem

    path = state_dir / DEFAULT_CERT
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pem = self_signed_pem()
        write_private(path, pem)
        return pem


async def _run(args: argparse.Namespace) -> None:
    from bus import telemetry
    from bus.client import ApiClient
    from bus.roles import INGRESS, Identity
    from node.ingress.controller import IngressController

    s: IngressSettings = args.settings
    state = Path(args.state_dir) if args.state_dir else config.data_dir() / "ingress" / args.name
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    stop = stop_on_signals()
    client = await ApiClient.connect(args.server, Identity(INGRESS), name=f"k8n-ingress-{args.name}")
    try:
        async with telemetry.publishing(client.nc, INGRESS, args.name):
            ctl = IngressController(client, state, s.address_list or [config.default_route_address()],
                                    bind_address=s.bind_address, http_port=s.http_port, https_port=s.https_port,
                                    classes=s.class_set, node_name=args.name, default_cert=default_cert(state))
            await ctl.start()
            try:
                log.info("ingress controller on %s ready: http on %s:%d, https on %s:%d, classes %s (pid %d)",
                         args.name, s.bind_address, s.http_port, s.bind_address, s.https_port,
                         ",".join(sorted(s.class_set)), os.getpid())
                await stop.wait()
            finally:
                await ctl.stop()
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    cmdline.run(_run(args))


if __name__ == "__main__":
    main()
