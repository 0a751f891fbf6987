"""More control-plane machines: ``k8n token create --control-plane`` and ``k8n join --control-plane``, with
kubeadm's ``--upload-certs`` / ``--certificate-key`` shape.

The keys every control-plane machine needs (the cluster CA and its key, the ServiceAccount signing key, the bus's
operator and account keys, the admin token file) travel in one Secret, ``kube-system/k8n-control-plane-certs``,
sealed with AES-256-GCM under a key that is never stored in the cluster: it is printed in the join command
(``--certificate-key``). The Secret is owned by the bootstrap token it was made with, so it goes when that token
goes (a join uses the token up); only a token of the ``system:bootstrappers:k8n:control-plane`` group may read it.

A machine that joins the control plane writes those keys into its data directory, mints its components'
credentials itself, and runs what the first machine runs: a NATS server joining the cluster's routes (when NATS is
a cluster: ``k8n up --nats-servers 3``; a standalone NATS cannot become a cluster while it runs), an API server
replica, a standby controller manager, scheduler and node view, the HTTPS gateway on its own address, and a node agent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bus import bootstraptoken, clusterinfo, config
from bus.cli.common import CliError

if TYPE_CHECKING:
    from bus.client import ApiClient

SECRET_NAME = bootstraptoken.CONTROL_PLANE_SECRET
BUNDLE_KEY = "bundle"
#: what a control-plane machine needs, relative to the data directory (present ones only)
BUNDLE_FILES = ("pki/ca.crt", "pki/ca.crt.previous", "pki/ca.key", "pki/sa.key", "pki/sa.pub", "pki/sa.retired.json",
                "nats-auth/operator.nk", "nats-auth/account.nk", "nats-auth/account-signing.nk",
                "nats-auth/account-signing-former.json", "nats-auth/system.nk", "nats-auth/revocations.json",
                "tokens.csv")
NATS_PORT, ROUTE_PORT, HTTP_PORT = 4222, 6222, 6443


def new_key() -> str:
    return os.urandom(32).hex()


def seal(ddir: Path, key_hex: str) -> str:
    """The bundle of ``ddir``'s control-plane files, sealed (base64 of nonce + AES-GCM ciphertext)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    files = {rel: base64.b64encode((ddir / rel).read_bytes()).decode() for rel in BUNDLE_FILES
             if (ddir / rel).exists()}
    nonce = os.urandom(12)
    sealed = AESGCM(bytes.fromhex(key_hex)).encrypt(nonce, json.dumps(files).encode(), SECRET_NAME.encode())
    return base64.b64encode(nonce + sealed).decode()


def unseal(blob: str, key_hex: str) -> dict[str, bytes]:
    """The files of a sealed bundle; CliError when the key does not open it."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.b64decode(blob)
        key = bytes.fromhex(key_hex)
        plain = AESGCM(key).decrypt(raw[:12], raw[12:], SECRET_NAME.encode())
    except (ValueError, InvalidTag):
        raise CliError("the certificate key does not open the control plane's keys (--certificate-key is the one "
                       "printed with the token)") from None
    files = json.loads(plain)
    bad = [rel for rel in files if rel not in BUNDLE_FILES]
    if bad:
        raise CliError(f"the control plane's keys name unexpected files: {', '.join(bad)}")
    return {rel: base64.b64decode(v) for rel, v in files.items()}


async def upload(client: ApiClient, ddir: Path, token_secret: dict) -> str:
    """Seal this machine's control-plane files into the Secret, owned by ``token_secret``; the key."""
    from bus import errors

    key = new_key()
    meta = token_secret["metadata"]
    obj = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": SECRET_NAME, "namespace": bootstraptoken.NAMESPACE,
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Secret", "name": meta["name"],
                                             "uid": meta["uid"], "blockOwnerDeletion": True}]},
           "data": {BUNDLE_KEY: base64.b64encode(seal(ddir, key).encode()).decode()}}
    try:
        await client.create(obj)
    except errors.AlreadyExists:
        cur = await client.get("secrets", SECRET_NAME, bootstraptoken.NAMESPACE)
        obj["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        await client.update(obj)
    return key


def write_files(ddir: Path, files: dict[str, bytes]) -> None:
    from bus.files import write_private

    for rel, data in files.items():
        path = ddir / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        write_private(path, data)
        if rel.endswith((".crt", ".pub")):
            os.chmod(path, 0o644)


async def fetch(server: str, token: str, key_hex: str, info: clusterinfo.ClusterInfo) -> dict[str, bytes]:
    """The control plane's files, read with the token over TLS checked against the pinned CA."""
    import ssl

    from bus.cli.join import _http

    ctx = ssl.create_default_context(cadata=info.ca_pem.decode())
    code, doc = await _http("GET", f"{server}/api/v1/namespaces/{bootstraptoken.NAMESPACE}/secrets/{SECRET_NAME}",
                            ctx, token)
    if code == 401:
        raise CliError("the cluster refused the token: it is wrong, expired, used up or deleted "
                       "(`k8n token create --control-plane` on a control-plane machine makes a new one)")
    if code == 403:
        raise CliError("this token may not fetch the control plane's keys: make one with "
                       "`k8n token create --control-plane`")
    if code == 404:
        raise CliError("the control plane's keys are not uploaded (or went with their token): "
                       "`k8n token create --control-plane` uploads them")
    if code != 200:
        raise CliError(f"could not fetch the control plane's keys (HTTP {code}): {doc.get('message', doc)}")
    blob = base64.b64decode((doc.get("data") or {}).get(BUNDLE_KEY, "")).decode()
    return unseal(blob, key_hex)


async def use_up(url: str, creds_dir: Path, token: str) -> None:
    """Delete the token (the join used it) and the sealed keys it carried (the garbage collector would, as their
    owner went, but not at once), as the admin this machine can now be."""
    from bus import errors
    from bus.client import ApiClient
    from bus.connect import creds_path
    from bus.roles import ADMIN, Identity

    client = await ApiClient.connect(url, creds=str(creds_path(Identity(ADMIN), creds_dir)))
    try:
        for name in (bootstraptoken.secret_name(bootstraptoken.parse(token)[0]), SECRET_NAME):
            for attempt in range(5):  # the garbage collector may be deleting the keys (the token owns them) too
                try:
                    await client.delete("secrets", name, bootstraptoken.NAMESPACE)
                except errors.NotFound:
                    pass
                except errors.Conflict:
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                break
            else:  # the join succeeded; the garbage collector removes them as their owner is gone
                print(f"warning: could not delete secret {bootstraptoken.NAMESPACE}/{name} (it keeps changing); "
                      "the garbage collector removes it", file=sys.stderr)
    finally:
        await client.close()


async def announce(url: str, creds_dir: Path, info: clusterinfo.ClusterInfo, client_url: str | None,
                   route_url: str | None) -> None:
    """Add this machine's NATS server to cluster-info (so later machines route to it too)."""
    from dataclasses import replace

    from bus.client import ApiClient
    from bus.connect import creds_path
    from bus.roles import ADMIN, Identity

    client = await ApiClient.connect(url, creds=str(creds_path(Identity(ADMIN), creds_dir)))
    try:
        cm = await client.get("configmaps", clusterinfo.NAME, clusterinfo.NAMESPACE)
        cur = clusterinfo.ClusterInfo.from_configmap(cm)
        new = replace(cur, nats_servers=tuple(dict.fromkeys((*cur.nats_servers, *filter(None, [client_url])))),
                      nats_routes=tuple(dict.fromkeys((*cur.nats_routes, *filter(None, [route_url])))))
        if new != cur:
            cm["data"] = new.configmap()["data"]
            await client.update(cm)
    finally:
        await client.close()


def run_member(ddir: Path, node: str, address: str, token: str, info: clusterinfo.ClusterInfo,
               ingress_ports: tuple[int, int] | None = (80, 443)) -> int:
    """Run this machine as a member of the control plane (keys already in ``ddir``), with its node agent and (on
    ``ingress_ports``) its ingress controller, until SIGINT/SIGTERM."""
    import asyncio

    from bus import pki
    from bus.cli import runner
    from bus.natscluster import Server, render_server
    from bus.natsserver import binary, port_busy

    refused = runner.listen_refusal(address)
    if refused:
        raise CliError(refused)
    sup = runner.Supervisor()
    logs = ddir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _, creds_dir = runner.mint_credentials(ddir, node)
    os.environ["K8N_DATA_DIR"] = str(ddir)
    me = None
    urls = list(info.nats_servers)
    if info.nats_routes:  # a NATS server of the cluster on this machine too
        me = Server(f"nats-{node}", address, NATS_PORT, ROUTE_PORT)
        conf = render_server(ddir, me, [*info.nats_routes, me.route_url], (address,))
        server = runner.Child(f"nats-server {me.name}", [binary(), "-c", str(conf)], logs / f"{me.name}.log")
        sup.servers = [server]
        server.start()
        urls.insert(0, me.client_url)
        for _ in range(150):
            if port_busy(me.port, me.host):
                break
            if server.proc.poll() is not None:
                raise CliError(f"this machine's NATS server did not start (see {server.log_path})")
            time.sleep(0.1)
    url = ",".join(urls)
    pki.ensure(ddir / "pki", (address, runner.KUBERNETES_SERVICE_IP))
    token_file = ddir / runner.TOKEN_FILE
    children = [*runner.single_control_plane(url, creds_dir, logs),
                runner.Child("gateway", runner.gateway_argv(url, address, HTTP_PORT, token_file, ddir / "pki",
                                                            creds_dir, address), logs / "gateway.log"),
                runner.Child("node agent", runner.agent_argv(url, [
                    "--name", node, "--state-dir", str(ddir / "nodes" / node), *runner._creds_flag(creds_dir)]),
                    logs / "agent.log")]
    ingress = runner.ingress_child(url, node, ingress_ports, ddir, creds_dir, address, logs)
    try:
        sup.start(children)
        if not asyncio.run(runner._wait_api(url, creds_dir, 120, sup.tick)):
            return 0
        if ingress is not None:
            sup.start([ingress])
        asyncio.run(use_up(url, creds_dir, token))
        asyncio.run(announce(url, creds_dir, info, me.client_url if me else None, me.route_url if me else None))
        config.write_cluster_info(ddir, url, pid=os.getpid(), dataDir=str(ddir),
                                  gateway=f"https://{address}:{HTTP_PORT}", node=node)
        print(f"k8n: this machine ({node}) joined the control plane: NATS {me.client_url if me else '(remote)'}, "
              f"API https://{address}:{HTTP_PORT}, logs in {logs}; stop: Ctrl-C", flush=True)
        sup.run()
    finally:
        sup.stop_all()
        config.clear_cluster_info(ddir)
    return 0
