"""Selector watches as Kubernetes' watch cache gives them (``bus.client.FilteredWatch``)."""

from __future__ import annotations

from bus.client import FilteredWatch
from bus.store import ADDED, DELETED, MODIFIED, WatchEvent
from tests.builders import pod


class Replay:
    """The store watch's events, in order (a fake of the thing under the filter, not of the filter)."""

    def __init__(self, events: list[tuple[str, dict]]) -> None:
        self.events = [WatchEvent(t, o, i + 1, "default.x") for i, (t, o) in enumerate(events)]
        self.last_revision = 0

    def __aiter__(self):
        return self

    async def __anext__(self) -> WatchEvent:
        if not self.events:
            raise StopAsyncIteration
        return self.events.pop(0)

    async def stop(self) -> None:
        pass


def matches(obj: dict) -> bool:
    return (obj["metadata"].get("labels") or {}).get("app") == "watched"


async def types_of(events: list[tuple[str, dict]], initial: list[dict]) -> list[str]:
    return [ev.type async for ev in FilteredWatch(Replay(events), matches, True, initial)]


async def test_a_replayed_creation_is_added_even_when_the_seed_list_holds_it():
    """A watch from an older resourceVersion is seeded with the current list, which already holds an object the
    watch will replay the creation of: that creation is still ADDED, its later changes MODIFIED."""
    w = pod("w", labels={"app": "watched"})
    changed = pod("w", labels={"app": "watched", "step": "two"})
    assert await types_of([(ADDED, w), (MODIFIED, changed), (DELETED, changed)], [changed]) == \
        [ADDED, MODIFIED, DELETED]


async def test_leaving_and_entering_the_selector():
    inside = pod("w", labels={"app": "watched"})
    outside = pod("w", labels={"app": "other"})
    assert await types_of([(MODIFIED, inside), (MODIFIED, outside), (MODIFIED, outside), (MODIFIED, inside)],
                          []) == [ADDED, DELETED, ADDED]
