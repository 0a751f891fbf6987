"""JetStream encryption at rest: the key every nats-server of k8n encrypts its store with (KV buckets, history and
audit streams, consumers, RAFT logs: Secrets and their history included), kept outside the store.

The key is 32 random bytes (64 hex digits) in ``<dir>/jetstream.key`` (0600, the directory 0700), beside the
store, never in it: a copy of the store directory alone does not reveal a Secret. nats-server derives its
key-encryption keys from it (HMAC), encrypts a fresh key for every message block with them (ChaCha20-Poly1305).
The key file is a nats-server config fragment (``key: "..."``) that the embedded server's config includes in its
``jetstream {}`` block (the config itself holds no key, nor does the command line, and it runs as it is written,
under any supervisor); a rendered cluster server's copy is ``jetstream-key.conf`` (0600) beside its ``nats.conf``,
the directory that goes to its machine.

Rotation (:meth:`AtRestKeys.rotate`) keeps the old key as ``jetstream.key.prev`` and installs a new one; a server
started with both (``prev_encryption_key``) re-encrypts every stream's blocks and metadata with the new key while
it recovers them at start-up, before it serves clients; after that start the old key is removed
(:meth:`AtRestKeys.finish`) and alone no longer opens the store. Two defects of nats-server 2.15's re-encryption
are worked around or refused here: a stream that never held a message (its only block ``1.blk`` empty) fails to
convert and is deleted by the server, so that empty block is removed first (:func:`prepare_rotation`; nothing is
lost, the server makes a new one); and a clustered server does not re-encrypt its RAFT meta log (it stops with
"Can't start JetStream: ... message authentication failed"), so rotation is refused for clustered servers
(:class:`ClusteredRotation`). Durable consumers' state is not re-encrypted either; k8n keeps none on disk (its
consumers are ephemeral, in memory).

A store written unencrypted by an earlier k8n is encrypted in place by nats-server at the first start with a key
(its log says "Encrypting stream ..."). A store with encrypted streams but no key file is refused: a new key
would not open it, and JetStream would answer as if the buckets did not exist."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from bus.files import write_atomic

KEY_DIR = "keys"
KEY_FILE = "jetstream.key"
PREV_FILE = "jetstream.key.prev"
CIPHER = "chachapoly"
#: nats-server's log line when a stream's metadata does not open with the key it was given (a wrong key)
DECRYPT_ERRORS = ("Error decrypting",)
#: and, during a re-encryption, when a stream failed to convert (the server then drops it)
ROTATION_ERRORS = (*DECRYPT_ERRORS, "unable to recover keys", "message authentication failed",
                   "Error recreating stream")


class AtRestKeyError(RuntimeError, ValueError):
    """A key file that cannot be used, or a rotation that cannot start."""


class KeyMissing(AtRestKeyError):
    pass


class RotationPending(AtRestKeyError):
    pass


class ClusteredRotation(AtRestKeyError):
    def __init__(self, keys: "AtRestKeys") -> None:
        super().__init__("key rotation is not supported for clustered NATS servers: nats-server 2.15 does not "
                         "re-encrypt its RAFT meta log with the previous key (it would not start); put the "
                         f"previous key back: mv {keys.prev_path} {keys.key_path}")


def encrypted_streams(store_dir: Path) -> list[Path]:
    """The streams of the JetStream store in ``store_dir`` that are encrypted (have a ``meta.key``)."""
    return sorted(Path(store_dir).glob("jetstream/*/streams/*/meta.key")) + \
        sorted(Path(store_dir).glob("jetstream/*/_js_/*/meta.key"))


def plaintext_streams(store_dir: Path) -> list[Path]:
    """The streams of the store that are not encrypted (written by a k8n without encryption at rest)."""
    return [m.parent for m in sorted(Path(store_dir).glob("jetstream/*/streams/*/meta.inf"))
            if not (m.parent / "meta.key").exists()]


class AtRestKeys:
    """The key (and, while a rotation is in progress, the previous key) in ``directory``."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)
        self.key_path, self.prev_path = self.dir / KEY_FILE, self.dir / PREV_FILE

    @classmethod
    def of_data_dir(cls, data_dir: str | os.PathLike) -> "AtRestKeys":
        return cls(Path(data_dir) / KEY_DIR)

    @staticmethod
    def _read(path: Path) -> str | None:
        try:
            found = re.search(r'^\s*[a-z_]+\s*:\s*"([0-9a-f]{32,})"\s*$', path.read_text(), re.M)
        except FileNotFoundError:
            return None
        if not found:
            raise AtRestKeyError(f'{path}: not a JetStream key (key: "64 hex digits" expected)')
        return found.group(1)

    def current(self) -> str | None:
        return self._read(self.key_path)

    def previous(self) -> str | None:
        return self._read(self.prev_path)

    def _write(self, path: Path, key: str) -> None:
        """``path`` as the fragment of a ``jetstream {}`` block that names ``key`` (the previous key if ``path``
        is :attr:`prev_path`)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        option = "prev_encryption_key" if path == self.prev_path else "key"
        write_atomic(path, f'# JetStream encryption at rest (bus.atrest)\n{option}: "{key}"\n', 0o600)

    def ensure(self, *store_dirs: Path) -> str:
        """The key, made now if there is none; KeyMissing when one of ``store_dirs`` holds encrypted streams
        without it (a new key would not open them)."""
        key = self.current()
        if key:
            return key
        for d in store_dirs:
            if encrypted_streams(d):
                raise KeyMissing(f"the JetStream store {d} is encrypted but its key {self.key_path} is missing; "
                                 "put the key back (a new one would not open the store)")
        key = secrets.token_hex(32)
        self._write(self.key_path, key)
        return key

    def config_include(self, conf_dir: Path, *store_dirs: Path) -> str:
        """The ``jetstream {}`` lines of a config in ``conf_dir`` that include the key files (the previous key's
        too during a rotation), the key made now if there is none (:meth:`ensure`)."""
        self.ensure(*store_dirs)
        files = [self.key_path] + ([self.prev_path] if self.previous() else [])
        return f"  cipher: {CIPHER}\n" + "".join(f'  include "{os.path.relpath(f, conf_dir)}"\n' for f in files)

    def config_inline(self, *store_dirs: Path) -> str:
        """The same lines with the key written out, for a 0600 file included in the ``jetstream {}`` block of a
        clustered server; ClusteredRotation while a rotation is in progress."""
        key = self.ensure(*store_dirs)
        if self.previous():
            raise ClusteredRotation(self)
        return f'cipher: {CIPHER}\nkey: "{key}"\n'

    def rotate(self) -> str:
        """Install a new key, keeping the current one as the previous key until the servers have re-encrypted
        the store with the new one (:meth:`finish`); RotationPending while an earlier rotation is not finished."""
        current = self.current()
        if current is None:
            raise KeyMissing(f"no JetStream key in {self.dir} yet (it is made at the first start)")
        if self.previous():
            raise RotationPending(f"a rotation is in progress ({self.prev_path} still exists): start the NATS "
                                  "servers once with both keys to finish it")
        self._write(self.prev_path, current)  # first: a crash here leaves two copies of the same key
        self._write(self.key_path, secrets.token_hex(32))
        return self.key_path.name

    def finish(self) -> bool:
        """Drop the previous key (the store is re-encrypted with the current one); whether there was one."""
        if not self.prev_path.exists():
            return False
        self.prev_path.unlink()
        return True


def prepare_rotation(store_dir: Path) -> list[Path]:
    """Before a server re-encrypts ``store_dir`` with the previous key: remove the empty first block (and its key)
    of every stream that never held a message, which nats-server 2.15 cannot convert (it deletes such a stream);
    the block files removed."""
    removed = []
    for msgs in sorted(Path(store_dir).glob("jetstream/*/streams/*/msgs")):
        blocks = list(msgs.glob("*.blk"))
        if len(blocks) == 1 and blocks[0].name == "1.blk" and blocks[0].stat().st_size == 0:
            blocks[0].unlink()
            (msgs / "1.key").unlink(missing_ok=True)
            removed.append(blocks[0])
    return removed


def log_offset(log: Path | None) -> int:
    try:
        return Path(log).stat().st_size if log else 0
    except FileNotFoundError:
        return 0


def decrypt_errors(log: Path | None, offset: int = 0, patterns: tuple[str, ...] = DECRYPT_ERRORS) -> list[str]:
    """nats-server's complaints, in ``log`` after ``offset``, about streams it could not decrypt."""
    if not log:
        return []
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if any(e in line for e in patterns)]


def after_start(keys: AtRestKeys, logs: list[tuple[Path | None, int]]) -> str | None:
    """Once the servers listen (they recovered, and re-encrypted, their streams before): AtRestKeyError when one
    said it could not decrypt part of its store (the caller stops them, before a client creates a bucket over a
    stream the server skipped; the previous key, if any, stays); else the previous key of a rotation is dropped.
    A message for the operator about the rotation, or None when there was none."""
    patterns = ROTATION_ERRORS if keys.prev_path.exists() else DECRYPT_ERRORS
    errors = [e for log, offset in logs for e in decrypt_errors(log, offset, patterns)]
    if errors:
        kept = f"; the previous key stays in {keys.prev_path}" if keys.prev_path.exists() else ""
        raise AtRestKeyError(f"nats-server could not decrypt its store with the key in {keys.dir} "
                             f"({errors[0].strip()}){kept}")
    if not keys.finish():
        return None
    return "JetStream store re-encrypted with the new key; the previous key is removed"
