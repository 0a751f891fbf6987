"""Configuration of a NATS cluster for k8n (``k8n nats-config``): each server's ``nats.conf`` rendered from the
template in ``deploy/nats-cluster/nats.conf``, with the cluster's operator and accounts (``auth.conf``,
``bus.natsauth``), TLS certificates from the cluster CA for clients and for the mutual-TLS routes (``bus.pki``), and
the credentials of the control plane's identities. Each server's store is encrypted at rest with the key of
``<data dir>/keys`` (``bus.atrest``), written for it into ``jetstream-key.conf`` (0600) beside its ``nats.conf``."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template

from bus import pki
from bus.atrest import AtRestKeys
from bus.connect import CA_FILE
from bus.files import write_private
from bus.natsauth import ClusterAuth
from bus.roles import ADMIN, APISERVER, CONTROLLER_MANAGER, GATEWAY, NODEVIEW, SCHEDULER, Identity

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "nats-cluster" / "nats.conf"
CLIENT_PORT, ROUTE_PORT = 4222, 6222
CONTROL_PLANE = (ADMIN, APISERVER, NODEVIEW, CONTROLLER_MANAGER, SCHEDULER, GATEWAY)


@dataclass(frozen=True)
class Server:
    name: str
    host: str
    port: int = CLIENT_PORT
    cluster_port: int = ROUTE_PORT

    @classmethod
    def parse(cls, spec: str) -> "Server":
        """``name=host[:port[:cluster_port]]``; ValueError otherwise."""
        name, sep, rest = spec.partition("=")
        if not sep or not name or not rest:
            raise ValueError(f"a server is NAME=HOST[:PORT[:CLUSTER_PORT]], not {spec!r}")
        parts = rest.split(":")
        if len(parts) > 3:
            raise ValueError(f"a server is NAME=HOST[:PORT[:CLUSTER_PORT]], not {spec!r}")
        ports = [int(p) for p in parts[1:]]
        return cls(name, parts[0], *ports)

    @property
    def client_url(self) -> str:
        return f"tls://{self.host}:{self.port}"

    @property
    def route_url(self) -> str:
        return f"nats-route://{self.host}:{self.cluster_port}"


def render(data_dir: Path, servers: list[Server], template: Path = TEMPLATE) -> list[Path]:
    """Write ``<data dir>/nats/<server>/`` (``nats.conf``, ``auth.conf``, ``pki/``; the server keeps its account
    JWTs in ``jwt/`` there) for each server and the control plane's credentials into ``<data dir>/creds``; the
    config files, in the order given."""
    data_dir = Path(data_dir)
    auth = ClusterAuth.load_or_create(data_dir / "nats-auth")
    creds = data_dir / "creds"
    for role in CONTROL_PLANE:
        auth.write_creds(Identity(role), creds)
    routes = [s.route_url for s in servers]
    return [render_server(data_dir, s, routes, tuple(o.host for o in servers), template) for s in servers]


def render_server(data_dir: Path, server: Server, routes: list[str], hosts: tuple[str, ...] = (),
                  template: Path = TEMPLATE) -> Path:
    """``<data dir>/nats/<server>/nats.conf`` (and its ``auth.conf``, ``pki/``) for one server of the cluster whose
    route URLs are ``routes`` (a server that joins a running cluster: the routes of those it knows; NATS gossips
    the rest); its certificate, from the cluster CA in ``<data dir>/pki``, names ``hosts`` and its own. The CA is
    copied into ``<data dir>/creds`` for the clients."""
    data_dir = Path(data_dir)
    auth = ClusterAuth.load_or_create(data_dir / "nats-auth")
    cert, key, ca = pki.ensure(data_dir / "pki", tuple(dict.fromkeys((server.host, *hosts))), name="nats",
                               common_name="nats", client_auth=True)
    creds = data_dir / "creds"
    creds.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(ca, creds / CA_FILE)
    d = server_dir(data_dir, server.name)
    (d / "pki").mkdir(parents=True, exist_ok=True, mode=0o700)
    for f in (cert, key, ca):
        write_private(d / "pki" / f.name, f.read_bytes())
    write_private(d / "auth.conf", auth.server_config(d / "jwt"))
    write_key_conf(data_dir, server.name)
    conf = Template(Path(template).read_text()).substitute(
        name=server.name, listen=f"{server.host}:{server.port}", store_dir=str(d / "jetstream"),
        cert=str(d / "pki" / cert.name), key=str(d / "pki" / key.name), ca=str(d / "pki" / ca.name),
        cluster_listen=f"{server.host}:{server.cluster_port}", routes="\n    ".join(routes))
    write_private(d / "nats.conf", conf)
    return d / "nats.conf"


def server_dir(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / "nats" / name


def write_key_conf(data_dir: Path, name: str) -> Path:
    """``jetstream-key.conf`` of the server ``name``: the cipher and key that its ``nats.conf`` includes in its
    ``jetstream {}`` block; 0600. (``bus.atrest.ClusteredRotation`` during a key rotation.)"""
    d = server_dir(data_dir, name)
    path = d / "jetstream-key.conf"
    write_private(path, AtRestKeys.of_data_dir(data_dir).config_inline(d / "jetstream"))
    return path
