"""``k8n backup FILE`` and ``k8n restore FILE``: a consistent snapshot of every bucket, and a cluster rebuilt from it.

Backup (the admin identity): an API server takes the cut (``master/apiserver/backup.py``: every replica's writes held
while it reads each bucket's last revision), then this reads each bucket's keys as they were at that revision (one
batched direct get per chunk of keys, ``multi_last`` with ``up_to_seq``, as a chunked list reads its snapshot) and
writes the file (``bus.backup``). A key changed more than its bucket keeps (8 revisions) between the cut and its read
has lost its value at the cut: the backup starts over (:data:`TRIES`).

Restore (the API server identity: only it writes the buckets) into an empty data directory (a NATS server of its own
is started on it for the restore, then stopped; ``k8n up --data-dir`` runs the cluster) or a running NATS that holds
no k8n bucket yet (``--server``, before any API server starts on it). Every bucket is made with its recorded stream
configuration, its stream starting after the revision the backup covers: restored objects get resourceVersions above
every one the old cluster handed out in that bucket, so a client that kept one relists (a watch from an older one
is 410 Gone) and never mistakes a restored object for one it saw.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import typer

from bus.cli.common import CliError, DataDirOpt, ServerOpt, fail, run
from bus.cli.main import app

TRIES = 3
CHUNK = 1000  # keys per batched direct get
WINDOW = 512  # restore publishes in flight
RESTORE_SYNC = "2m"  # the restore's own nats-server: flushed at its exit, then fsynced (restore_into_dir)
RESTORER = "system:k8n-restore"  # the user the restored writes' history names


class Lost(Exception):
    """A key's value at the cut is no longer kept."""


async def read_bucket(store: Any, bucket: str, revision: int) -> list[tuple[str, bytes, int]]:
    """Every key of ``bucket`` holding a value at ``revision``: ``(key, stored bytes in schema 1, its revision)``."""
    from bus import schema, subjects
    from bus.resources import bucket_stand_in
    from bus.store import _is_delete

    res = bucket_stand_in(bucket)
    subjs = await store._subjects(res, None)
    found: dict[str, Any] = {}
    for i in range(0, len(subjs), CHUNK):
        found.update(await store._last_at(res, subjs[i:i + CHUNK], revision))
    out = []
    for subj in subjs:
        m = found.get(subj)
        if m is None:
            if await store._absent_at(res, subj, revision):
                continue  # made after the cut
            raise Lost(f"{bucket}: the value of {subj} at revision {revision} is no longer kept")
        if not _is_delete(m):
            # kept in schema 1 (bus.schema), which every release restores and reads
            out.append((subjects.key_from_kv_subject(bucket, subj), schema.to_legacy(bucket, m.data, m.headers),
                        int(m.headers["Nats-Sequence"])))
    return out


async def take(nc: Any, path: str | Path, timeout: float = 30.0) -> dict:
    """Back up the cluster ``nc`` reaches (an admin's connection) into ``path``; the header written."""
    import nats.errors

    from bus import backup, codec, errors, subjects
    from bus.connect import identity_of
    from bus.store import NatsStore

    store = NatsStore(nc, timeout=timeout)
    subject = subjects.backup_subject(identity_of(nc).token)
    for attempt in range(TRIES):
        try:
            msg = await nc.request(subject, codec.pack({}), timeout=timeout)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as e:
            raise errors.unavailable(f"no API server took the backup's cut ({type(e).__name__})") from None
        reply = codec.unpack(msg.data)
        if int(reply.get("code", 500)) >= 400:
            err = errors.ApiError.from_status(reply.get("body") or {"code": reply.get("code")})
            if err.code == 503 and attempt + 1 < TRIES:
                await asyncio.sleep(0.5)
                continue
            raise err
        head = reply["body"]
        try:
            with backup.Writer(path) as w:  # one bucket in memory at a time; no file unless complete
                w.header(head)
                for name, info in sorted(head["buckets"].items()):
                    w.bucket(name, await read_bucket(store, name, int(info["revision"])))
        except Lost as e:
            if attempt + 1 == TRIES:
                raise errors.unavailable(f"objects changed faster than a backup reads them ({e}); retry") from None
            continue
        head["objects"], head["rawBytes"] = w.objects, w.raw_bytes
        return head
    raise errors.unavailable("no backup after retries")


# ---- restore -------------------------------------------------------------------------------------------------------

async def _k8n_streams(nc: Any) -> list[str]:
    import orjson

    from bus import subjects

    names: list[str] = []
    while True:
        resp = orjson.loads((await nc.request(subjects.JS_API + ".STREAM.NAMES", orjson.dumps({"offset": len(names)}),
                                              timeout=5)).data)
        got = resp.get("streams") or []
        names.extend(got)
        if not got or len(names) >= int(resp.get("total") or 0):
            return [n for n in names if n.startswith(subjects.stream(""))]


def stream_config(config: dict, revision: int, replicas: int) -> dict:
    """A bucket's recorded stream configuration, to make it anew: starting after ``revision``, ``replicas``."""
    out = {k: v for k, v in config.items() if k not in ("metadata", "placement", "sources", "mirror")}
    out["first_seq"] = revision + 1
    out["num_replicas"] = replicas
    return out


async def restore(nc: Any, path: str | Path, replicas: int = 1) -> dict:
    """Recreate every bucket of the backup at ``path`` on ``nc`` (an API server's connection to a NATS holding no
    k8n bucket); the header, with ``objects`` restored."""
    import orjson

    from bus import backup, history, subjects
    from bus.store import EVENT_HDR, EXPECTED_LAST, NatsStore

    existing = await _k8n_streams(nc)
    if existing:
        raise CliError(f"the NATS server already holds k8n buckets ({', '.join(sorted(existing)[:5])}…): restore "
                       "only into one that holds none (before any API server started on it)")
    store = NatsStore(nc, timeout=30.0)
    hdrs = {EVENT_HDR: "ADDED", EXPECTED_LAST: "0", **history.writer_headers(RESTORER, "restore", None)}
    total = 0
    with backup.Reader(path) as r:
        head = r.header
        for bucket, entries in r.buckets():
            info = head["buckets"][bucket]
            cfg = stream_config(info["config"], int(info["revision"]), replicas)
            resp = orjson.loads((await nc.request(f"{subjects.JS_API}.STREAM.CREATE.{cfg['name']}",
                                                  orjson.dumps(cfg), timeout=10)).data)
            if "error" in resp:
                raise CliError(f"cannot create stream {cfg['name']}: {resp['error'].get('description')}")
            pending: set[asyncio.Task] = set()

            async def put(key: str, value: bytes) -> None:
                await store._publish(subjects.kv_key_subject(bucket, key), value, hdrs)

            for key, value, _ in entries:
                if len(pending) >= WINDOW:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for t in done:
                        t.result()
                pending.add(asyncio.ensure_future(put(key, value)))
            for t in asyncio.as_completed(pending):
                await t
            total += len(entries)
    head["objects"] = total
    return head


def _replicas(nc: Any) -> int:
    from bus.store import NatsStore, StoreSettings

    return StoreSettings.load().kv_replicas or NatsStore(nc).auto_replicas()


async def restore_into_dir(path: str | Path, ddir: Path, sync_every_write: bool = False) -> dict:
    """Restore into the empty data directory ``ddir`` through a NATS server of its own (stopped afterwards).

    Unless ``sync_every_write``, that server flushes in the background (``sync_interval`` :data:`RESTORE_SYNC`)
    rather than fsyncing every write: nothing is acknowledged to anyone before the restore ends, and it ends with the
    server's clean exit (which writes out what it holds) and an fsync of every file and directory of the store — as
    durable as one fsync per write, at a fraction of the cost. A server that had to be killed fails the restore."""
    import signal

    from bus.connect import connect, find_credentials
    from bus.natsauth import ClusterAuth
    from bus.natsserver import DURABLE_SYNC, NatsServer
    from bus.roles import APISERVER, Identity

    auth = ClusterAuth.load_or_create(ddir / "nats-auth")
    srv = NatsServer(ddir / "jetstream", port=0, host="127.0.0.1", log_file=ddir / "nats-server.log", auth=auth,
                     creds_dir=ddir / "creds", sync_interval=DURABLE_SYNC if sync_every_write else RESTORE_SYNC)
    srv.start()
    proc = srv.proc
    try:
        srv.credentials(Identity(APISERVER))
        nc = await connect(srv.url, find_credentials(Identity(APISERVER), directory=ddir / "creds"))
        try:
            head = await restore(nc, path, 1)
        finally:
            await nc.drain()
    finally:
        srv.stop(timeout=60)
    if proc is not None and proc.returncode == -signal.SIGKILL:
        raise RuntimeError("the restore's nats-server did not exit cleanly (killed): restore again")
    fsync_tree(ddir / "jetstream")
    return head


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (and ``root``)."""
    import os

    for d, _, files in os.walk(root):
        for name in [*files, "."]:
            fd = os.open(os.path.join(d, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _empty(ddir: Path, remove: bool) -> None:
    """Undo a failed restore into ``ddir``: remove it (``remove``: this restore made it) or what it put there."""
    if remove:
        shutil.rmtree(ddir, ignore_errors=True)
        return
    for p in ddir.iterdir():
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _summary(head: dict, what: str, seconds: float) -> str:
    revs = ", ".join(f"{b}={i['revision']}" for b, i in sorted(head["buckets"].items()) if i["revision"])
    return (f"{what} {head.get('objects', 0)} objects of {len(head['buckets'])} buckets in {seconds:.1f}s "
            f"(cut at {head['time']}, k8n {head['version'].get('gitVersion', '?')}; revisions: {revs})")


@app.command("backup")
def backup_cmd(
    file: str = typer.Argument(..., help="the backup file to write (0600; replaced atomically)"),
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Back up every object of a running cluster: one consistent point in time across every kind (the admin
    identity)."""
    started = time.monotonic()

    async def body(client: Any) -> int:
        try:
            head = await take(client.nc, file)
        except OSError as e:
            raise CliError(f"cannot write {file}: {e}") from None
        print(_summary(head, f"backed up into {file}:", time.monotonic() - started))
        return 0

    run(server, data_dir, body)


@app.command("restore")
def restore_cmd(
    file: str = typer.Argument(..., help="a backup file written by `k8n backup`"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="an empty (or new) data directory to restore "
                                           "into; then `k8n up --data-dir` it"),
    server: Optional[str] = typer.Option(None, "--server", "-s", help="restore into this running NATS instead (one "
                                         "with no k8n bucket yet), as the API server identity of --creds-dir"),
    creds_dir: Optional[str] = typer.Option(None, "--creds-dir", help="with --server: the credentials directory "
                                            "(default <data dir>/creds)"),
) -> None:
    """Rebuild a cluster's objects from a backup into an empty data directory or NATS."""
    from bus import backup
    from bus.connect import connect, find_credentials
    from bus.roles import APISERVER, Identity

    if not data_dir and not server:
        fail(CliError("give --data-dir (an empty data directory) or --server"))
    started = time.monotonic()
    try:
        backup.Reader(file).close()  # a k8n backup, before anything is made
    except (OSError, backup.BackupError) as e:
        fail(CliError(str(e)))
    made: Path | None = None  # the data directory this restore fills (emptied again if it fails)
    new_dir = False
    try:
        if server:
            async def into_server() -> dict:
                directory = creds_dir or (str(Path(data_dir).expanduser() / "creds") if data_dir else None)
                nc = await connect(server, find_credentials(Identity(APISERVER), directory=directory))
                try:
                    return await restore(nc, file, _replicas(nc))
                finally:
                    await nc.drain()
            head = asyncio.run(into_server())
        else:
            ddir = Path(data_dir).expanduser()  # type: ignore[arg-type]
            if ddir.exists() and (not ddir.is_dir() or any(ddir.iterdir())):
                raise CliError(f"{ddir} is not empty: restore into a new or empty data directory")
            new_dir = not ddir.exists()
            ddir.mkdir(parents=True, exist_ok=True, mode=0o700)
            made = ddir
            head = asyncio.run(restore_into_dir(file, ddir))
    except (CliError, backup.BackupError, OSError, RuntimeError) as e:
        if made is not None:
            _empty(made, new_dir)
        fail(e if isinstance(e, CliError) else CliError(str(e)))
    print(_summary(head, "restored", time.monotonic() - started))
    if not server:
        print(f"  start it: k8n up --data-dir {data_dir}")
