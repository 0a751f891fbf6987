"""``k8n join`` and ``k8n token``: machines joining a cluster, kubeadm's way.

On a control-plane machine, ``k8n token create`` makes a bootstrap token (a Secret in kube-system, with a TTL;
``list``/``delete`` as ``kubeadm token``). On the new machine, ``k8n join SERVER --token T --ca-hash sha256:H``:

1. reads ``kube-public/cluster-info`` from SERVER (anonymously, over TLS it cannot check yet) and accepts the CA it
   names only if the hash of the CA's public key is ``H`` — from then on every connection checks the server against
   that CA;
2. makes a NATS user key pair (the seed stays on this machine) and sends the public key, with the token, as a
   CertificateSigningRequest for signer ``k8n.io/bus-node`` (``bus.nodecsr``); the API server uses the token up and
   answers with the node's user JWT;
3. writes ``<data dir>/creds/node-<name>.creds`` (0600), the NATS CA and ``cluster.json`` (the NATS URLs), then runs
   the node agent in the foreground, restarting it when it dies (``k8n agent --data-dir D --name N`` runs it again
   later without a token);
4. unless ``--no-ingress``, the same request carries a second public key, signed for the bus identity ``ingress``
   (``<data dir>/creds/ingress.creds``), and the node's ingress controller (haproxy on ports 80 and 443) runs beside
   its agent, as on the machine of ``k8n up``: every node serves Ingresses by default.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from bus import bootstraptoken, clusterinfo, config
from bus.cli.common import CliError, DataDirOpt, ServerOpt, fail, run
from bus.cli.main import app
from bus.meta import format_time, parse_duration

if TYPE_CHECKING:
    from bus.client import ApiClient

CA_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
HTTP_TIMEOUT = 10.0

token_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                        help="Bootstrap tokens that let machines join (k8n join).")
app.add_typer(token_app, name="token")


# ---- k8n token ------------------------------------------------------------------------------------------


async def _cluster_join_command(client: ApiClient, token: str) -> str:
    from bus import pki

    try:
        cm = await client.get("configmaps", clusterinfo.NAME, clusterinfo.NAMESPACE)
        info = clusterinfo.ClusterInfo.from_configmap(cm)
    except Exception as e:
        raise CliError(f"cannot print a join command: {e} (k8n up --listen ADDR publishes it)") from None
    server = info.server.removeprefix("https://")
    return f"k8n join {server} --token {token} --ca-hash {pki.ca_hash(info.ca_pem)}"


@token_app.command("create")
def token_create(
    token: Optional[str] = typer.Argument(None, help="the token to make (default: a random one)"),
    ttl: Optional[str] = typer.Option(None, "--ttl", help="how long it is valid (e.g. 2h, 30m; default 24h, 2h "
                                                          "with --control-plane); 0: forever"),
    description: str = typer.Option("", "--description", help="what it is for"),
    print_join_command: bool = typer.Option(False, "--print-join-command",
                                            help="print the whole k8n join command, not only the token"),
    control_plane: bool = typer.Option(False, "--control-plane", help="a token for a machine joining the control "
                                       "plane: uploads this machine's control-plane keys, sealed with a new "
                                       "certificate key (printed), readable with this token only"),
    server: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Create a bootstrap token a machine joins with (used up by the join)."""
    from bus.cli import controlplane

    try:
        seconds = parse_duration(ttl or ("2h" if control_plane else "24h"))
        token = token or bootstraptoken.generate()
        groups = (bootstraptoken.NODE_GROUP,) + ((bootstraptoken.CONTROL_PLANE_GROUP,) if control_plane else ())
        obj = bootstraptoken.secret_object(token, timedelta(seconds=seconds) if seconds else None,
                                           description or ("k8n control-plane join token" if control_plane
                                                           else "k8n join token"), groups)
    except ValueError as e:
        fail(CliError(str(e)))
    ddir = config.data_dir(data_dir)
    if control_plane and not (ddir / "pki" / "ca.key").exists():
        fail(CliError(f"no control-plane keys in {ddir}: run this on a control-plane machine (--data-dir)"))

    async def body(client: ApiClient) -> int:
        made = await client.create(obj)
        key = await controlplane.upload(client, ddir, made) if control_plane else None
        line = await _cluster_join_command(client, token) if print_join_command or control_plane else token
        print(f"{line} --control-plane --certificate-key {key}" if key else line)
        return 0

    run(server, data_dir, body)


async def _tokens(client: ApiClient) -> list[bootstraptoken.BootstrapToken]:
    items, _ = await client.list("secrets", bootstraptoken.NAMESPACE)
    out = []
    for s in items:
        if s.get("type") != bootstraptoken.SECRET_TYPE:
            continue
        try:
            out.append(bootstraptoken.BootstrapToken.from_secret(s))
        except ValueError as e:
            print(f"warning: {e}", file=sys.stderr)
    return out


@token_app.command("list")
def token_list(server: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt) -> None:
    """List the bootstrap tokens (kubeadm token list's columns)."""
    from bus.cli.printers import render

    async def body(client: ApiClient) -> int:
        rows = [[f"{t.id}.{t.secret}", t.ttl(), format_time(t.expiration) if t.expiration else "<never>",
                 ",".join(t.usages) or "<none>", t.description or "<none>", ",".join(t.groups) or "<none>"]
                for t in sorted(await _tokens(client), key=lambda t: t.id)]
        if not rows:
            print("No bootstrap tokens found", file=sys.stderr)
            return 0
        print(render(["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"], rows))
        return 0

    run(server, data_dir, body)


@token_app.command("delete")
def token_delete(tokens: list[str] = typer.Argument(..., help="tokens or token ids"),
                 server: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt) -> None:
    """Delete bootstrap tokens: they can no longer be used to join."""
    from bus import errors

    ids = []
    for t in tokens:
        token_id = t.split(".", 1)[0]
        if not bootstraptoken.ID_RE.match(token_id):
            fail(CliError(f'given token or token id "{t}" didn\'t match pattern "{bootstraptoken.ID_RE.pattern}" '
                          f'or "{bootstraptoken.TOKEN_RE.pattern}"'))
        ids.append(token_id)

    async def body(client: ApiClient) -> int:
        failed = 0
        for token_id in ids:
            try:
                await client.delete("secrets", bootstraptoken.secret_name(token_id), bootstraptoken.NAMESPACE)
                print(f'bootstrap token "{token_id}" deleted')
            except errors.NotFound:
                print(f'error: bootstrap token "{token_id}" not found', file=sys.stderr)
                failed += 1
        return 1 if failed else 0

    run(server, data_dir, body)


async def publish(client: ApiClient, info: clusterinfo.ClusterInfo) -> str:
    """Write ``kube-public/cluster-info`` (create or replace) and make a 24 h token; the join command to print."""
    from bus import errors, pki

    cm = info.configmap()
    try:
        await client.create(cm)
    except errors.AlreadyExists:
        cur = await client.get("configmaps", clusterinfo.NAME, clusterinfo.NAMESPACE)
        cur["data"] = cm["data"]
        await client.update(cur)
    token = bootstraptoken.generate()
    await client.create(bootstraptoken.secret_object(token, bootstraptoken.DEFAULT_TTL, "made by k8n up"))
    return f"k8n join {info.server.removeprefix('https://')} --token {token} --ca-hash {pki.ca_hash(info.ca_pem)}"


# ---- k8n join -------------------------------------------------------------------------------------------


def _https(server: str) -> str:
    s = server if "://" in server else f"https://{server}"
    if not s.startswith("https://"):
        raise CliError(f"{server}: the API server is reached over HTTPS (https://HOST:PORT or HOST:PORT)")
    return s.rstrip("/")


async def _http(method: str, url: str, ctx: ssl.SSLContext, token: str | None = None,
                body: dict | None = None) -> tuple[int, dict]:
    import aiohttp

    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        async with s.request(method, url, json=body, headers=headers, ssl=ctx) as r:
            try:
                doc = await r.json(content_type=None)
            except ValueError:
                doc = {}
            return r.status, doc if isinstance(doc, dict) else {}


async def discover(server: str, ca_hash: str) -> clusterinfo.ClusterInfo:
    """cluster-info from ``server``, its CA pinned by ``ca_hash`` (CliError when it does not match)."""
    import aiohttp

    from bus import pki

    unchecked = ssl.create_default_context()
    unchecked.check_hostname = False
    unchecked.verify_mode = ssl.CERT_NONE  # nothing is trusted until the CA's hash matches
    try:
        code, doc = await _http("GET", server + clusterinfo.PATH, unchecked)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
        raise CliError(f"cannot reach the cluster at {server}: {str(e) or type(e).__name__}") from None
    if code != 200:
        raise CliError(f"{server} did not give its cluster-info (HTTP {code}: {doc.get('message', '')})")
    try:
        info = clusterinfo.ClusterInfo.from_configmap(doc)
        found = pki.ca_hash(info.ca_pem)
    except ValueError as e:
        raise CliError(f"{server}: {e}") from None
    if found != ca_hash:
        raise CliError(f"the cluster at {server} has CA public key hash {found}, not --ca-hash {ca_hash}: "
                       "refusing to join (is it the cluster you meant?)")
    return info


async def enrol(server: str, token: str, node: str, info: clusterinfo.ClusterInfo,
                ingress: bool = True) -> tuple[str, str | None]:
    """The node's ``.creds`` text (a new key pair, its public key signed by the cluster for ``node``) and, with
    ``ingress``, its ingress controller's (another pair, signed for the identity ``ingress``)."""
    import aiohttp
    import nkeys

    from bus import nodecsr
    from bus.natsauth import Key, creds_text

    ctx = ssl.create_default_context(cadata=info.ca_pem.decode())
    key = Key.generate(nkeys.PREFIX_BYTE_USER)
    ingress_key = Key.generate(nkeys.PREFIX_BYTE_USER) if ingress else None
    try:
        code, doc = await _http("POST", server + "/apis/certificates.k8s.io/v1/certificatesigningrequests", ctx,
                                token, nodecsr.request_object(node, key.public,
                                                              ingress_key.public if ingress_key else None))
    except ssl.SSLError as e:
        raise CliError(f"{server} does not prove it holds a certificate of the pinned CA: {e}") from None
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
        raise CliError(f"cannot reach the cluster at {server}: {str(e) or type(e).__name__}") from None
    if code == 401:
        raise CliError("the cluster refused the token: it is wrong, expired, used up or deleted "
                       "(`k8n token create` on a control-plane machine makes a new one)")
    if code != 201:
        raise CliError(f"the cluster did not sign this node's credentials (HTTP {code}): {doc.get('message', doc)}")
    jwt = nodecsr.issued_jwt(doc)
    if not jwt:
        raise CliError(f"the cluster accepted the request {doc.get('metadata', {}).get('name')} but signed nothing")
    ingress_jwt = nodecsr.issued_ingress_jwt(doc) if ingress_key else None
    if ingress_key and not ingress_jwt:
        raise CliError(f"the cluster signed the request {doc.get('metadata', {}).get('name')} for the node but not "
                       "for its ingress controller (an older API server?): join with --no-ingress")
    return creds_text(jwt, key.seed), creds_text(ingress_jwt, ingress_key.seed) if ingress_key else None


def write_node_files(ddir: Path, node: str, creds: str, info: clusterinfo.ClusterInfo,
                     ingress_creds: str | None = None) -> Path:
    """The node's credentials (and its ingress controller's, when given), the NATS CA and cluster.json in ``ddir``;
    the node's credentials' path."""
    from bus.connect import CA_FILE
    from bus.files import write_private
    from bus.roles import INGRESS, Identity

    creds_dir = ddir / "creds"
    creds_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = creds_dir / f"{Identity.node(node).file_name}.creds"
    write_private(path, creds)
    ingress_path = creds_dir / f"{Identity(INGRESS).file_name}.creds"
    if ingress_creds:
        write_private(ingress_path, ingress_creds)
    else:  # joined with --no-ingress: none left from an earlier join (its key is revoked by this one)
        ingress_path.unlink(missing_ok=True)
    write_private(creds_dir / CA_FILE, info.ca_pem)
    config.write_cluster_info(ddir, ",".join(info.nats_servers), node=node, gateway=info.server,
                              joined=format_time(datetime.now(timezone.utc)))
    return path


def run_agent(ddir: Path, node: str, servers: str, extra: list[str],
              ingress_ports: tuple[int, int] | None = None, address: str | None = None) -> int:
    """The node agent (and with ``ingress_ports`` its ingress controller) in the foreground, restarted with back-off
    when they die, until SIGINT/SIGTERM."""
    from bus.cli.runner import Child, Supervisor, agent_argv, ingress_child

    sup = Supervisor()
    logs = ddir / "logs"
    logs.mkdir(exist_ok=True)
    creds_dir = ddir / "creds"
    children = [Child("node agent", agent_argv(servers, [
        "--name", node, "--state-dir", str(ddir / "nodes" / node), "--creds-dir", str(creds_dir), *extra]),
        logs / "agent.log")]
    ingress = ingress_child(servers, node, ingress_ports, ddir, creds_dir, address or config.default_route_address(),
                            logs) if ingress_ports else None
    sup.start(children + ([ingress] if ingress else []))
    also = (f"; its ingress controller serves ports {ingress_ports[0]} and {ingress_ports[1]} (log: "
            f"{ingress.log_path})" if ingress else "")
    print(f"k8n: node {node} joined; its agent runs (log: {logs / 'agent.log'}){also}; stop: Ctrl-C", flush=True)
    try:
        sup.run()
    finally:
        sup.stop_all()
    return 0


def _join_control_plane(url: str, token: str, ca_hash: str, key: str | None, node: str, address: str | None,
                        ddir: Path, ingress_ports: tuple[int, int] | None) -> int:
    from bus.cli import controlplane

    if not key or not re.fullmatch(r"[0-9a-f]{64}", key):
        fail(CliError("--control-plane needs --certificate-key: 64 hex digits (k8n token create --control-plane "
                      "prints it)"))

    async def fetch() -> clusterinfo.ClusterInfo:
        info = await discover(url, ca_hash)
        controlplane.write_files(ddir, await controlplane.fetch(url, token, key, info))
        return info

    try:
        info = asyncio.run(fetch())
        return controlplane.run_member(ddir, node, address or config.default_route_address(), token, info,
                                       ingress_ports)
    except CliError as e:
        fail(e)


@app.command()
def join(
    server: str = typer.Argument(..., help="HOST:PORT of the cluster's HTTPS API (printed by k8n up --listen)"),
    token: str = typer.Option(..., "--token", help="a bootstrap token (k8n token create)"),
    ca_hash: str = typer.Option(..., "--ca-hash", help="sha256:<hex> of the cluster CA's public key"),
    name: Optional[str] = typer.Option(None, "--name", help="this node's name (default: the hostname)"),
    node_ip: Optional[str] = typer.Option(None, "--node-ip", help="the address other machines reach this one at "
                                                                   "(default: the default route's source address)"),
    data_dir: Optional[str] = DataDirOpt,
    no_run: bool = typer.Option(False, "--no-run", help="enrol only; run the agent later (k8n agent)"),
    control_plane: bool = typer.Option(False, "--control-plane", help="join the control plane: a NATS server of "
                                       "the cluster, an API server replica, standby controllers, the HTTPS API and "
                                       "a node agent on this machine (needs --certificate-key)"),
    certificate_key: Optional[str] = typer.Option(None, "--certificate-key", help="the key the control plane's "
                                                  "keys are sealed with (k8n token create --control-plane)"),
    no_ingress: bool = typer.Option(False, "--no-ingress", help="run no ingress controller on this node (and ask "
                                    "for no ingress credentials)"),
    ingress_http_port: int = typer.Option(80, "--ingress-http-port", min=1, max=65535,
                                          help="host port the ingress serves HTTP on (all addresses)"),
    ingress_https_port: int = typer.Option(443, "--ingress-https-port", min=1, max=65535,
                                           help="host port the ingress serves HTTPS on (all addresses)"),
) -> None:
    """Join this machine to a cluster as a node: enrol with a bootstrap token, then run its agent."""
    from bus.cli.runner import default_node_name
    from bus.roles import Identity

    node = name or default_node_name()
    try:
        bootstraptoken.parse(token)
        if not CA_HASH_RE.match(ca_hash):
            raise CliError(f"--ca-hash {ca_hash!r} is not sha256:<64 hex digits> (k8n up prints it)")
        Identity.node(node)
        url = _https(server)
    except (ValueError, CliError) as e:
        fail(e)
    ddir = config.data_dir(data_dir)
    ports = None if no_ingress else (ingress_http_port, ingress_https_port)
    if control_plane:
        raise typer.Exit(_join_control_plane(url, token, ca_hash, certificate_key, node, node_ip, ddir, ports))

    async def enrolment() -> clusterinfo.ClusterInfo:
        info = await discover(url, ca_hash)
        creds, ingress_creds = await enrol(url, token, node, info, ingress=not no_ingress)
        path = write_node_files(ddir, node, creds, info, ingress_creds)
        print(f"k8n: this machine is node {node} of the cluster at {info.server}; credentials in {path}", flush=True)
        return info

    try:
        info = asyncio.run(enrolment())
    except CliError as e:
        fail(e)
    if no_run:
        print(f"run its agent: k8n agent --data-dir {ddir} --name {node} --creds-dir {ddir / 'creds'}")
        if ports:
            print(f"and its ingress controller: k8n ingress --data-dir {ddir} --name {node} --creds-dir "
                  f"{ddir / 'creds'}")
        raise typer.Exit(0)
    raise typer.Exit(run_agent(ddir, node, ",".join(info.nats_servers), ["--node-ip", node_ip] if node_ip else [],
                               ports, node_ip))
