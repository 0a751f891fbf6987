"""The fault tests' write checker (tests/faults.py) against an in-memory API: it counts what was acknowledged and
what failed, and afterwards finds an acknowledged write that is missing or was replaced by an older value."""

from __future__ import annotations

import asyncio
import copy

from bus import errors
from tests.faults import WriteChecker


class MemoryApi:
    """ConfigMaps of one namespace with compare-and-set updates; every ``fail_every``-th write is not answered."""

    name = "memory"

    def __init__(self, fail_every: int = 0) -> None:
        self.objects: dict[str, dict] = {}
        self.rv = 0
        self.writes = 0
        self.fail_every = fail_every

    async def call(self, verb: str, ns: str, name: str | None = None, body: dict | None = None):
        await asyncio.sleep(0)
        if verb == "get":
            return (200, copy.deepcopy(self.objects[name])) if name in self.objects else (404, {"reason": "NotFound"})
        self.writes += 1
        if self.fail_every and self.writes % self.fail_every == 0:
            raise TimeoutError  # no answer (here: not applied either)
        name = body["metadata"]["name"]
        if verb == "create" and name in self.objects:
            return 409, {"reason": "AlreadyExists"}
        if verb == "update" and body["metadata"].get("resourceVersion") != self.objects[name]["metadata"][
                "resourceVersion"]:
            return 409, {"reason": "Conflict"}
        self.rv += 1
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[name] = obj
        return (201 if verb == "create" else 200), copy.deepcopy(obj)

    # what verify() reads with
    async def create(self, obj: dict) -> dict:
        return obj

    async def list(self, res: str, ns: str):
        return [copy.deepcopy(o) for o in self.objects.values()], str(self.rv)

    async def get(self, res: str, name: str, ns: str) -> dict:
        if name not in self.objects:
            raise errors.NotFound(404, f'configmaps "{name}" not found')
        return copy.deepcopy(self.objects[name])


async def run(api: MemoryApi, seconds: float = 0.2) -> WriteChecker:
    checker = WriteChecker([api], per_target=2, interval=0.001)
    await checker.start(api)
    await asyncio.sleep(seconds)
    await checker.stop()
    return checker


async def test_every_acknowledged_write_is_verified_when_nothing_was_lost():
    api = MemoryApi(fail_every=7)
    checker = await run(api)
    report = await checker.verify(api)
    assert report.acked > 50 and report.failed > 5 and report.attempted == report.acked + report.failed
    assert report.reasons["TimeoutError"] > 0
    assert report.lost == [] and report.verified == len(checker.acked) == len(api.objects)


async def test_an_acknowledged_create_missing_afterwards_is_lost():
    api = MemoryApi()
    checker = await run(api)
    created = next(n for n in api.objects if "-c" in n)
    del api.objects[created]
    report = await checker.verify(api)
    assert len(report.lost) == 1 and report.lost[0].startswith(f"{created}: acknowledged")


async def test_an_object_older_than_its_last_acknowledged_write_is_lost():
    api = MemoryApi()
    checker = await run(api)
    key = next(n for n in api.objects if "-k" in n)
    api.objects[key]["data"]["seq"] = "0"  # as if a write acknowledged later had been rolled back
    report = await checker.verify(api)
    assert [x.split(":")[0] for x in report.lost] == [key]
