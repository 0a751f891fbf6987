"""Image garbage collection as the kubelet's image GC manager (pkg/kubelet/images/image_gc_manager.go).

Every ``--image-gc-seconds`` (the kubelet: 5 min) the images are detected: each image is remembered with when it
was first seen and when a container last used it. When the image filesystem's usage is at or above
``--image-gc-high-threshold`` (85 %), unused images are removed, least recently used first (then first detected),
until usage is below ``--image-gc-low-threshold`` (80 %). Never removed: an image a container uses (running or
not, of any pod on the machine), an image a pod bound to this node names, the pause image, or an image first seen
less than ``--image-minimum-gc-age`` ago. When not enough could be freed: a Warning ``FreeDiskSpaceFailed`` event
on the Node; when a removal fails: ``ImageGCFailed``.

The selection is pure (``bytes_to_free``, ``select``); ``ImageGC`` does the Docker calls."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from bus.events import WARNING
from node.runtime.spec import normalize_image

log = logging.getLogger(__name__)


@dataclass
class ImageRecord:
    id: str
    size: int
    first_detected: float
    last_used: float
    tags: list[str] = field(default_factory=list)


def bytes_to_free(available: int, capacity: int, high: float, low: float) -> int:
    """Bytes to remove for the usage to fall to ``low`` percent, 0 while it is below ``high`` percent."""
    if capacity <= 0:
        return 0
    usage = 100 - available * 100 // capacity
    if usage < high:
        return 0
    return max(0, int(capacity * (100 - low) / 100) - available)


def select(records: Iterable[ImageRecord], in_use: set[str], amount: int, now: float,
           min_age: float) -> list[ImageRecord]:
    """The images to remove to free ``amount`` bytes: unused, old enough, least recently used first; every
    eligible one if they add up to less."""
    eligible = sorted((r for r in records if r.id not in in_use and now - r.first_detected >= min_age),
                      key=lambda r: (r.last_used, r.first_detected))
    out, freed = [], 0
    for r in eligible:
        if freed >= amount:
            break
        out.append(r)
        freed += r.size
    return out


class ImageGC:
    """``api``: Docker's low-level client (``docker.APIClient``); ``pod_images``: the images the node's pods name;
    ``event``: ``(type, reason, message)`` on the Node."""

    def __init__(self, api: Any, path: str, pause_image: str, pod_images: Callable[[], Iterable[str]],
                 event: Callable[[str, str, str], Any], high: float = 85.0, low: float = 80.0,
                 min_age: float = 120.0, clock: Callable[[], float] = time.time) -> None:
        self.api, self.path, self.pause_image = api, path, pause_image
        self.pod_images, self.event = pod_images, event
        self.high, self.low, self.min_age, self.clock = high, low, min_age, clock
        self.records: dict[str, ImageRecord] = {}

    # ---- Docker (blocking; run in a thread) ----------------------------------------------------

    def _detect_blocking(self) -> set[str]:
        """Refresh the records; the ids of the images in use."""
        now = self.clock()
        images = self.api.images()
        by_tag = {t: img["Id"] for img in images for t in img.get("RepoTags") or [] if t != "<none>:<none>"}
        in_use = {c.get("ImageID") for c in self.api.containers(all=True)}
        in_use.discard(None)
        for name in [self.pause_image, *self.pod_images()]:
            if (iid := by_tag.get(normalize_image(name))) is not None:
                in_use.add(iid)
        seen = set()
        for img in images:
            iid = img["Id"]
            seen.add(iid)
            r = self.records.get(iid)
            if r is None:
                r = self.records[iid] = ImageRecord(iid, int(img.get("Size") or 0), now, 0.0)
            r.tags = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
            r.size = int(img.get("Size") or r.size)
            if iid in in_use:
                r.last_used = now
        for gone in set(self.records) - seen:
            del self.records[gone]
        return in_use

    def _remove_blocking(self, r: ImageRecord) -> None:
        self.api.remove_image(r.id, force=True)

    # ---- rounds --------------------------------------------------------------------------------

    async def garbage_collect(self) -> int:
        """One round at the thresholds; the bytes freed."""
        in_use = await asyncio.to_thread(self._detect_blocking)
        try:
            st = os.statvfs(self.path)
        except OSError as e:
            log.warning("image GC: cannot measure %s: %s", self.path, e)
            return 0
        amount = bytes_to_free(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, self.high, self.low)
        if amount <= 0:
            return 0
        log.warning("image filesystem %s is over %g%% used; freeing %d bytes down to %g%%", self.path, self.high,
                    amount, self.low)
        freed = await self._free(in_use, amount)
        if freed < amount:
            await self.event(WARNING, "FreeDiskSpaceFailed",
                             f"Failed to garbage collect required amount of images. Attempted to free {amount} bytes, "
                             f"but only found {freed} bytes eligible to free.")
        return freed

    async def delete_unused(self) -> int:
        """Every unused image old enough (the eviction manager's node-level reclaim); the bytes freed."""
        in_use = await asyncio.to_thread(self._detect_blocking)
        return await self._free(in_use, 1 << 62)

    async def _free(self, in_use: set[str], amount: int) -> int:
        freed = 0
        for r in select(self.records.values(), in_use, amount, self.clock(), self.min_age):
            try:
                await asyncio.to_thread(self._remove_blocking, r)
            except Exception as e:
                log.warning("image GC: removing %s %s: %s", r.id[:19], r.tags, e)
                await self.event(WARNING, "ImageGCFailed", f"failed to remove image {r.id}: {e}")
                continue
            log.info("image GC: removed %s %s (%d bytes)", r.id[:19], r.tags, r.size)
            self.records.pop(r.id, None)
            freed += r.size
        return freed

    async def loop(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await self.garbage_collect()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("image GC failed: %s", e)
                await self.event(WARNING, "ImageGCFailed", str(e))
