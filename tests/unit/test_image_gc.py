"""Image garbage collection (node.imagegc): how much to free between the thresholds, which images go (least
recently used first; never one in use, named by a pod, the pause image or a young one), and a round against a
stand-in for Docker's API that records what it was asked to remove."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from node.imagegc import ImageGC, ImageRecord, bytes_to_free, select

GB = 10**9


def test_bytes_to_free_between_high_and_low():
    assert bytes_to_free(available=20 * GB, capacity=100 * GB, high=85, low=80) == 0  # 80 % used: below high
    assert bytes_to_free(available=16 * GB, capacity=100 * GB, high=85, low=80) == 0  # 84 %
    assert bytes_to_free(available=15 * GB, capacity=100 * GB, high=85, low=80) == 5 * GB  # 85 %: down to 80 %
    assert bytes_to_free(available=1 * GB, capacity=100 * GB, high=85, low=80) == 19 * GB
    assert bytes_to_free(available=0, capacity=0, high=85, low=80) == 0


def test_select_least_recently_used_first_and_only_eligible():
    recs = [ImageRecord("old", 3, first_detected=0, last_used=10),
            ImageRecord("older", 2, first_detected=0, last_used=5),
            ImageRecord("used", 100, first_detected=0, last_used=1),
            ImageRecord("young", 50, first_detected=990, last_used=0),
            ImageRecord("newest", 4, first_detected=0, last_used=20)]
    picked = select(recs, in_use={"used"}, amount=4, now=1000, min_age=120)
    assert [r.id for r in picked] == ["older", "old"]  # 2 + 3 bytes >= 4
    assert [r.id for r in select(recs, {"used"}, 10**9, 1000, 120)] == ["older", "old", "newest"]
    assert select(recs, set(), 0, 1000, 120) == []


class FakeDocker:
    """Docker's low-level API as image GC calls it (images, containers, remove_image)."""

    def __init__(self, images, containers):
        self._images, self._containers, self.removed = images, containers, []

    def images(self):
        return [i for i in self._images if i["Id"] not in self.removed]

    def containers(self, all=False):
        return self._containers

    def remove_image(self, iid, force=False):
        self.removed.append(iid)


def test_a_round_spares_what_pods_use_and_the_pause_image(tmp_path, monkeypatch):
    api = FakeDocker([{"Id": "pause", "RepoTags": ["k8n/pause:3.9"], "Size": 10},
                      {"Id": "running", "RepoTags": ["a:1"], "Size": 10},
                      {"Id": "named", "RepoTags": ["k8n/busybox:latest"], "Size": 10},
                      {"Id": "unused1", "RepoTags": ["u:1"], "Size": 10},
                      {"Id": "unused2", "RepoTags": ["<none>:<none>"], "Size": 10}],
                     [{"ImageID": "running"}])
    now = [1000.0]
    events = []

    async def event(*a):
        events.append(a)

    gc = ImageGC(api, str(tmp_path), "k8n/pause:3.9", lambda: ["k8n/busybox"], event, min_age=60,
                 clock=lambda: now[0])
    # 95 % used: 15 bytes to free, down to 80 %
    monkeypatch.setattr("os.statvfs", lambda p: SimpleNamespace(f_bavail=5, f_frsize=1, f_blocks=100))
    assert asyncio.run(gc.garbage_collect()) == 0  # first seen now: too young
    assert [e[1] for e in events] == ["FreeDiskSpaceFailed"]
    assert "only found 0 bytes eligible" in events[0][2]
    now[0] += 61
    assert asyncio.run(gc.garbage_collect()) == 20
    assert sorted(api.removed) == ["unused1", "unused2"]
    assert len(events) == 1
    monkeypatch.setattr("os.statvfs", lambda p: SimpleNamespace(f_bavail=50, f_frsize=1, f_blocks=100))
    api.removed.clear()
    api._images.append({"Id": "late", "RepoTags": ["l:1"], "Size": 1})
    now[0] += 1000
    assert asyncio.run(gc.garbage_collect()) == 0 and api.removed == []  # 50 % used: nothing to do
