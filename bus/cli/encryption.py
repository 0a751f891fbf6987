"""``k8n encryption status|rotate|finish``: the key the NATS servers encrypt their stores with at rest
(``bus.atrest``). ``rotate`` installs a new key and keeps the old one until the embedded server has re-encrypted
its store with the new one: at once when it is not running (a server is started on the store for that), else at
the next ``k8n up``; ``finish`` drops the old key by hand. Clustered servers (``k8n nats-config``,
``k8n up --nats-servers N``) cannot rotate: nats-server 2.15 does not re-encrypt its RAFT meta log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bus import config
from bus.cli.common import DataDirOpt
from bus.cli.main import app

encryption = typer.Typer(help="Encryption at rest of the NATS servers' stores: status, key rotation.",
                         no_args_is_help=True)
app.add_typer(encryption, name="encryption")


def _stores(ddir: Path) -> list[Path]:
    """The JetStream store directories of the data directory: the embedded server's, the rendered cluster's."""
    return [d for d in (ddir / "jetstream", *sorted(ddir.glob("nats/*/jetstream"))) if d.is_dir()]


def _lock(ddir: Path):
    """``k8n up``'s lock on the data directory, held while the store is re-encrypted; None while it runs."""
    from bus.cli.runner import _lock

    ddir.mkdir(parents=True, exist_ok=True)
    return _lock(ddir)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(1)


@encryption.command("status")
def status(data_dir: Optional[str] = DataDirOpt) -> None:
    """Where the key is, whether a rotation is in progress, and how many streams of each store are encrypted."""
    from bus.atrest import AtRestKeys, encrypted_streams, plaintext_streams

    ddir = config.data_dir(data_dir)
    keys = AtRestKeys.of_data_dir(ddir)
    print(f"key: {keys.key_path} ({'present' if keys.key_path.exists() else 'not made yet'})")
    print(f"rotation in progress: {'yes, previous key in ' + str(keys.prev_path) if keys.prev_path.exists() else 'no'}")
    for d in _stores(ddir):
        print(f"store {d}: {len(encrypted_streams(d))} encrypted, {len(plaintext_streams(d))} not encrypted streams")


@encryption.command("rotate")
def rotate(data_dir: Optional[str] = DataDirOpt) -> None:
    """Install a new key; the stores are re-encrypted with it now (embedded server, not running) or at the next
    start of their servers, and the old key is kept until then."""
    from bus.atrest import AtRestKeyError, AtRestKeys

    ddir = config.data_dir(data_dir)
    keys = AtRestKeys.of_data_dir(ddir)
    if any(ddir.glob("nats/*/nats.conf")):
        _fail(f"key rotation is not supported for clustered NATS servers ({ddir / 'nats'}): nats-server 2.15 "
              "does not re-encrypt its RAFT meta log with the previous key")
    try:
        keys.rotate()
    except AtRestKeyError as e:
        _fail(str(e))
    print(f"new key in {keys.key_path}; the previous one kept in {keys.prev_path} until the stores are "
          "re-encrypted")
    lock = _lock(ddir)
    if lock is None or not (ddir / "jetstream").is_dir():
        if lock is not None:
            lock.close()
        print("the NATS server re-encrypts its store with it when it next starts (restart `k8n up`)")
        return
    from bus.natsserver import NatsServer

    srv = NatsServer(ddir / "jetstream", port=0, log_file=ddir / "nats-server.log", tls=False)
    try:
        srv.start()
    except RuntimeError as e:
        _fail(f"nats-server did not start to re-encrypt the store ({e}); the previous key is kept")
    finally:
        srv.stop()
        lock.close()
    print(srv.rotation_message or "re-encrypted")
    if keys.prev_path.exists():
        raise typer.Exit(1)


@encryption.command("finish")
def finish(data_dir: Optional[str] = DataDirOpt) -> None:
    """Drop the previous key by hand (k8n drops it itself once the server has started with both)."""
    from bus.atrest import AtRestKeys

    print("previous key removed" if AtRestKeys.of_data_dir(config.data_dir(data_dir)).finish()
          else "no rotation in progress")
