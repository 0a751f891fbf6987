"""The backup file of ``k8n backup`` / ``k8n restore``: one gzip-compressed stream of msgpack records.

1. the header (:func:`header`): ``format``, the k8n version that wrote it, the time, the API servers whose writes
   were held for the cut, and per bucket (``pods``, ``crontabs_stable_example_com``…) the ``revision`` the backup
   covers (the stream's last sequence at the cut: every resourceVersion up to it) and its stream's configuration;
2. per bucket, ``{"bucket": NAME, "count": N}`` then N records ``[key, value, revision]``: the latest value of every
   key at the cut (delete markers are left out), as stored in schema 1 (bus.schema: msgpack bytes, no resourceVersion);
3. the trailer ``{"end": true, "objects": TOTAL}`` (a truncated file has none: :func:`read` refuses it).

Left out: the reply cache (``replies``: the API servers' own, expires in minutes) and the node view (``nodepods``:
derived from the pods, rebuilt by the node view at start). Object histories and audit records are not kept either.
The file is written atomically (a temporary file renamed into place), 0600: it holds every Secret.
"""

from __future__ import annotations

import gzip
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import msgpack

from bus import subjects
from bus.meta import format_time

FORMAT = "k8n-backup/1"
LEFT_OUT = ("replies", "nodepods")
COMPRESS_LEVEL = 3


class BackupError(Exception):
    """A file that is not a complete k8n backup."""


def bucket_of_stream(stream_name: str) -> str | None:
    """The bucket a stream holds, when a backup keeps it (``KV_k8n-pods`` -> ``pods``); None otherwise."""
    prefix = subjects.stream("")
    if not stream_name.startswith(prefix):
        return None
    name = stream_name[len(prefix):]
    return name if name and name not in LEFT_OUT else None


def header(version: dict, buckets: dict[str, dict], apiservers: list[str], held_ms: float) -> dict:
    return {"format": FORMAT, "version": version, "time": format_time(time.time()), "apiservers": apiservers,
            "heldMs": round(held_ms, 2), "buckets": buckets}


class Writer:
    """Write a backup to ``path``: ``with Writer(p) as w: w.header(h); w.bucket(name, entries)``; the file appears
    (0600) only when the block ends without an error."""

    def __init__(self, path: str | os.PathLike, level: int = COMPRESS_LEVEL) -> None:
        self.path = Path(path)
        self.level = level
        self.objects = 0
        self.raw_bytes = 0  # the stored values' bytes, before compression

    def __enter__(self) -> "Writer":
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.raw = os.fdopen(fd, "wb")
        self.gz = gzip.GzipFile(fileobj=self.raw, mode="wb", compresslevel=self.level, mtime=0)
        self.packer = msgpack.Packer(use_bin_type=True)
        return self

    def header(self, h: dict) -> None:
        self.gz.write(self.packer.pack(h))

    def bucket(self, name: str, entries: list[tuple[str, bytes, int]]) -> None:
        self.gz.write(self.packer.pack({"bucket": name, "count": len(entries)}))
        for key, value, revision in entries:
            self.gz.write(self.packer.pack([key, value, revision]))
        self.objects += len(entries)
        self.raw_bytes += sum(len(v) for _, v, _ in entries)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.gz.write(self.packer.pack({"end": True, "objects": self.objects}))
            self.gz.close()
            self.raw.flush()
            os.fsync(self.raw.fileno())
            self.raw.close()
            if exc_type is None:
                os.chmod(self.tmp, 0o600)
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)


class Reader:
    """Read a backup: :attr:`header`, then :meth:`buckets` yields ``(name, [(key, value, revision), ...])``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.file = gzip.open(self.path, "rb")
        self.unpacker = msgpack.Unpacker(self.file, raw=False, strict_map_key=False, max_buffer_size=0)
        try:
            h = next(self.unpacker)
        except (StopIteration, OSError, ValueError, msgpack.UnpackException, EOFError) as e:
            self.close()
            raise BackupError(f"{self.path} is not a k8n backup ({type(e).__name__}: {e})") from None
        if not isinstance(h, dict) or h.get("format") != FORMAT:
            self.close()
            raise BackupError(f"{self.path} is not a k8n backup (format {FORMAT})")
        self.header = h

    def buckets(self) -> Iterator[tuple[str, list[tuple[str, bytes, int]]]]:
        try:
            for rec in self.unpacker:
                if not isinstance(rec, dict):
                    raise BackupError(f"{self.path}: unexpected record {type(rec).__name__}")
                if rec.get("end"):
                    return
                name, count = rec["bucket"], int(rec["count"])
                yield name, [tuple(next(self.unpacker)) for _ in range(count)]  # type: ignore[misc]
        except (StopIteration, OSError, EOFError, ValueError, KeyError, msgpack.UnpackException) as e:
            raise BackupError(f"{self.path} is truncated or damaged ({type(e).__name__}: {e})") from None
        raise BackupError(f"{self.path} is truncated (no end record)")

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
