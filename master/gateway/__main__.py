"""``python -m master.gateway``: the Kubernetes-compatible HTTP API in front of a k8n cluster.

    python -m master.gateway [--server URL] --port 6443 --token-file ~/.k8n/tokens.csv --cert-dir ~/.k8n/pki

HTTPS with a CA and serving certificate made in ``--cert-dir`` (or given with ``--tls-cert-file`` and
``--tls-private-key-file``; plain HTTP without either: kubectl then sends no token), loopback by
default; every request other than /version and the health checks needs a bearer token from the token
file or a ServiceAccount token.
"""

from __future__ import annotations

import argparse
import logging
import ssl
from pathlib import Path

from aiohttp import web

from bus import aio, cmdline
from master.gateway import oidc
from master.gateway.app import make_app
from master.gateway.auth import read_token_file

log = logging.getLogger("master.gateway")


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve(server_url: str, host: str, port: int, token_file: Path | None,
                tls: ssl.SSLContext | None = None, advertise: str | None = None, authorize: bool = True,
                cert_dir: Path | None = None) -> None:
    tokens = read_token_file(token_file) if token_file else {}
    app = make_app(server_url, tokens, advertise=(advertise, port) if advertise else None, authorize=authorize)
    keys = oidc.public_keys_path(cert_dir)
    if keys is not None:
        app[oidc.KEYS_PATH] = keys
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    hosts = [host] + ([advertise] if advertise and advertise != host and host not in ("0.0.0.0", "::") else [])
    for i, h in enumerate(hosts):  # loopback for the host's clients, the advertised address for pods
        site = web.TCPSite(runner, h, port, reuse_address=True, backlog=1024, ssl_context=tls)
        try:
            await site.start()
        except OSError as e:
            if i == 0:
                raise
            log.error("cannot listen on %s:%d for pods (kubernetes.default.svc will not answer): %s", h, port, e)
            continue
        log.info("gateway serving %s://%s:%d (NATS %s)", "https" if tls else "http", h, port, server_url)
    stop = aio.stop_on_signals()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m master.gateway", description=__doc__.split("\n")[0])
    cmdline.add_common_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    p.add_argument("--port", type=int, default=6443, help="port to listen on (default 6443)")
    p.add_argument("--token-file", type=Path, default=None,
                   help="static bearer tokens, kube-apiserver's --token-auth-file format")
    p.add_argument("--cert-dir", type=Path, default=None,
                   help="directory of the CA and serving certificate (made there when missing)")
    p.add_argument("--advertise-address", default=None,
                   help="an address pods reach this gateway at: it listens there too and is the endpoint of the "
                        "`kubernetes` Service in default (kubernetes.default.svc)")
    p.add_argument("--kubernetes-service-ip", default="10.96.0.1",
                   help="the `kubernetes` Service's ClusterIP, named in the serving certificate (default 10.96.0.1)")
    p.add_argument("--authorization-mode", default="Node,RBAC", choices=("Node,RBAC", "AlwaysAllow"),
                   help="Node,RBAC (default); AlwaysAllow only to measure what authorization costs")
    p.add_argument("--tls-cert-file", type=Path, default=None)
    p.add_argument("--tls-private-key-file", type=Path, default=None)
    args = cmdline.parse(p, argv)
    tls = None
    if args.tls_cert_file and args.tls_private_key_file:
        tls = tls_context(args.tls_cert_file, args.tls_private_key_file)
    elif args.cert_dir:
        from bus import pki

        hosts = (args.host, args.kubernetes_service_ip) + ((args.advertise_address,) if args.advertise_address else ())
        cert, key, _ca = pki.ensure(args.cert_dir, hosts)
        tls = tls_context(cert, key)
    cmdline.run(serve(args.server, args.host, args.port, args.token_file, tls, args.advertise_address,
                      args.authorization_mode != "AlwaysAllow", args.cert_dir))


if __name__ == "__main__":
    main()
