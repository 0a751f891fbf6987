"""Writing files that must never be seen half-written or by the wrong user: keys, credentials, certificates."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def write_atomic(path: Path, data: str | bytes, mode: int = 0o600, prepare: Callable[[Path], None] | None = None,
                 exclusive: bool = False) -> bool:
    """Write ``path`` through a temporary file in the same directory (created 0600, fsynced; ``prepare(tmp)`` may
    then set its owner; then ``mode``), put in place once complete: a reader sees the old file or the new one, never
    half of it nor with other permissions. ``exclusive``: only if ``path`` does not exist yet (False when it did)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        if prepare is not None:
            prepare(tmp)
        os.chmod(tmp, mode)  # whatever the umask
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def write_private(path: Path, data: str | bytes) -> None:
    """:func:`write_atomic` readable by its owner only (0600), its directory made 0700 when it is new."""
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, data, 0o600)
