"""The ``k8n`` console script (typer). Runner commands live in ``runner``; the kubectl-shaped
client verbs register themselves from their own modules (imported at the bottom)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bus import config
from bus.cli import runner
from bus.cli.common import DataDirOpt, ServerOpt

# rich_markup_mode=None: plain (kubectl-like) help and usage errors; rendering them with rich costs
# ~0.25 s of imports on every ``--help``. Heavy modules (nats-py, yaml, asyncio) are imported inside
# the commands that need them, so ``k8n version --client`` and ``k8n --help`` start quickly.
app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="k8n: a Kubernetes-style orchestrator on NATS.")


@app.command()
def up(
    data_dir: Optional[str] = DataDirOpt,
    nats_port: int = typer.Option(4222, "--nats-port", help="port of the embedded NATS server (0: pick a free one)"),
    no_agent: bool = typer.Option(False, "--no-agent", help="run no node agent (control plane only; no Docker needed)"),
    http_port: Optional[int] = typer.Option(
        None, "--http-port", help="port of the Kubernetes HTTP API (kubectl); default 6443, or a free one when "
        "6443 is taken; 0: pick a free one"),
    listen: str = typer.Option("127.0.0.1", "--listen", help="the address of this machine NATS and the HTTP API "
                               "listen on (TLS); beyond loopback, other machines can join (it prints the command)"),
    nats_servers: int = typer.Option(1, "--nats-servers", min=1, max=7, help="NATS servers to run as one cluster "
                                     "(TLS routes; with 3 or more every bucket keeps 3 replicas); their client ports "
                                     "follow --nats-port"),
    replicas: int = typer.Option(1, "--replicas", min=1, max=5, help="API servers, controller managers and "
                                 "schedulers to run, each in its own process (one leader, the others standing by)"),
    node_name: Optional[str] = typer.Option(None, "--node-name", help="the name of this machine's node "
                                            "(default: its host name)"),
    no_ingress: bool = typer.Option(False, "--no-ingress", help="run no ingress controller on the node"),
    ingress_http_port: int = typer.Option(80, "--ingress-http-port", min=1, max=65535,
                                          help="host port the ingress serves HTTP on (all addresses)"),
    ingress_https_port: int = typer.Option(443, "--ingress-https-port", min=1, max=65535,
                                           help="host port the ingress serves HTTPS on (all addresses)"),
    keep_pods: bool = typer.Option(False, "--keep-pods", help="leave the node's pod containers running when k8n "
                                   "stops, for the next start's agent to adopt (a restart or an upgrade restarts no "
                                   "pod; what `k8n install-service` runs); without it a stop removes them"),
) -> None:
    """Run an all-in-one cluster in the foreground (embedded NATS, control plane, HTTP API, a node agent and its
    ingress controller); each start step prints its time, and it is up once its node is Ready."""
    raise typer.Exit(runner.up(data_dir, nats_port, host=listen, with_agent=not no_agent, http_port=http_port,
                               nats_servers=nats_servers, replicas=replicas, node_name=node_name,
                               ingress_ports=None if no_ingress else (ingress_http_port, ingress_https_port),
                               keep_pods=keep_pods))


@app.command()
def server(server_url: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt) -> None:
    """Run the control plane alone against an existing NATS (``--server nats://...``)."""
    raise typer.Exit(runner.server(config.server_url(server_url, data_dir), _creds_dir(data_dir)))


@app.command()
def scheduler(
    server_url: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
    name: str = typer.Option("default-scheduler", "--name", help="the schedulerName this scheduler serves"),
) -> None:
    """Run a scheduler alone (e.g. a second one: pods pick it with spec.schedulerName)."""
    import os
    import sys

    os.execv(sys.executable, [sys.executable, "-m", "master.scheduler",
                              "--server", config.server_url(server_url, data_dir), "--name", name,
                              *_creds_flag(data_dir)])


@app.command("controller-manager")
def controller_manager(server_url: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt) -> None:
    """Run the controller manager alone; replicas elect a leader (Lease kube-system/kube-controller-manager)."""
    import os
    import sys

    os.execv(sys.executable, [sys.executable, "-m", "master", "--components", "controllers",
                              "--server", config.server_url(server_url, data_dir), *_creds_flag(data_dir)])


@app.command()
def credentials(
    role: str = typer.Argument(..., help="admin, apiserver, nodeview, controller-manager, scheduler, gateway, node, "
                                         "ingress, subscriber"),
    name: Optional[str] = typer.Argument(None, help="the node's name (node), a subscriber's or an API server's name"),
    data_dir: Optional[str] = DataDirOpt,
    out: Optional[str] = typer.Option(None, "--out", "-o", help="file to write (default: <data dir>/creds/"
                                                                "<identity>.creds)"),
) -> None:
    """Mint bus credentials for one identity with the cluster's keys (in <data dir>/nats-auth)."""
    import sys

    from bus.files import write_private
    from bus.natsauth import AuthError, ClusterAuth
    from bus.roles import NODE, Identity

    try:
        ident = Identity.node(name or "") if role == NODE else Identity(role, name or "")
        auth = ClusterAuth.load(config.data_dir(data_dir) / "nats-auth")
    except (ValueError, AuthError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(1)
    if out:
        write_private(Path(out), auth.mint(ident))
        path = Path(out)
    else:
        path = auth.write_creds(ident, config.data_dir(data_dir) / "creds")
    print(f"wrote credentials for {ident.token} to {path}")


@app.command("nats-config")
def nats_config(
    servers: str = typer.Option(..., "--servers", help="NAME=HOST[:PORT[:CLUSTER_PORT]],... (three for R3)"),
    data_dir: Optional[str] = DataDirOpt,
    template: Optional[str] = typer.Option(None, "--template", help="nats.conf template (default: "
                                                                    "deploy/nats-cluster/nats.conf)"),
) -> None:
    """Write the configuration of a NATS cluster for k8n: each server's nats.conf, auth and TLS certificates."""
    import sys

    from bus import natscluster

    try:
        specs = [natscluster.Server.parse(x.strip()) for x in servers.split(",") if x.strip()]
        paths = natscluster.render(config.data_dir(data_dir), specs,
                                   Path(template) if template else natscluster.TEMPLATE)
    except (ValueError, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(1)
    for p in paths:
        print(f"wrote {p}")
    print(f"clients: --server {','.join(s.client_url for s in specs)}")


def _creds_dir(data_dir: Optional[str]) -> Optional[str]:
    return str(config.data_dir(data_dir) / "creds") if data_dir else None


def _creds_flag(data_dir: Optional[str]) -> list[str]:
    d = _creds_dir(data_dir)
    return ["--creds-dir", d] if d else []


def main() -> None:
    import logging

    logging.getLogger("asyncio").setLevel(logging.ERROR)  # not "returning true from eof_received()" on TLS closes
    app()


# client verbs (apply, get, ...) register on `app` when imported
from bus.cli import verbs  # noqa: E402,F401
from bus.cli import canary  # noqa: E402,F401
from bus.cli import encryption  # noqa: E402,F401
from bus.cli import backup  # noqa: E402,F401
from bus.cli import certs  # noqa: E402,F401
from bus.cli import services  # noqa: E402,F401
from bus.cli import upgrade  # noqa: E402,F401
