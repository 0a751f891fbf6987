"""bus/events.py: client-go's EventCorrelator semantics (aggregation, dedup by patch, spam filter) and what the
recorder writes."""

from bus import errors
from bus.events import COMBINED_PREFIX, WARNING, EventCorrelator, EventRecorder
from tests import builders


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Client:
    """Records creates and merge patches of events; ``gone`` names events a patch finds deleted."""

    def __init__(self):
        self.events: dict[str, dict] = {}
        self.writes: list[tuple[str, str, dict]] = []
        self.gone: set[str] = set()
        self.rv = 0

    async def create(self, ev):
        assert "resourceVersion" not in ev["metadata"]
        self.rv += 1
        ev = {**ev, "metadata": {**ev["metadata"], "resourceVersion": str(self.rv)}}
        self.events[ev["metadata"]["name"]] = ev
        self.writes.append(("create", ev["metadata"]["name"], ev))
        return ev

    async def patch(self, resource, name, patch, namespace):
        assert resource == "events"
        if name in self.gone or name not in self.events:
            raise errors.ApiError.from_status({"code": 404, "reason": "NotFound", "message": "gone"})
        self.rv += 1
        ev = self.events[name] = {**self.events[name], **patch}
        ev["metadata"] = {**ev["metadata"], "resourceVersion": str(self.rv)}
        self.writes.append(("patch", name, patch))
        return ev


def recorder(clock=None):
    return EventRecorder(Client(), "default-scheduler", correlator=EventCorrelator(clock=clock or Clock()))


POD = builders.pod("p", uid="uid-p")


async def test_a_repeat_patches_count_and_last_timestamp_of_the_first_event():
    r = recorder()
    for _ in range(3):
        await r.event(POD, WARNING, "FailedScheduling", "0/3 nodes are available: 3 Insufficient cpu.")
    kinds = [w[0] for w in r.client.writes]
    assert kinds == ["create", "patch", "patch"]
    name = r.client.writes[0][1]
    assert all(w[1] == name for w in r.client.writes)
    assert set(r.client.writes[2][2]) == {"count", "lastTimestamp", "message"}
    ev = r.client.events[name]
    assert ev["count"] == 3 and ev["involvedObject"]["uid"] == "uid-p" and ev["source"] == {
        "component": "default-scheduler"}


async def test_ten_similar_messages_in_ten_minutes_are_combined():
    r = recorder()
    for i in range(12):
        await r.event(POD, WARNING, "FailedScheduling", f"0/{i + 1} nodes are available.")
    creates = [w for w in r.client.writes if w[0] == "create"]
    assert len(creates) == 10  # 9 distinct events, then one combined event
    combined = creates[-1][2]
    assert combined["message"] == COMBINED_PREFIX + "0/10 nodes are available."
    assert [w[0] for w in r.client.writes[10:]] == ["patch", "patch"]  # the 11th and 12th bump the combined one
    assert r.client.events[combined["metadata"]["name"]]["count"] == 3
    assert r.client.writes[-1][2]["message"] == COMBINED_PREFIX + "0/12 nodes are available."


async def test_similar_events_more_than_ten_minutes_apart_are_not_combined():
    clock = Clock()
    r = recorder(clock)
    for i in range(12):
        await r.event(POD, WARNING, "FailedScheduling", f"message {i}")
        clock.t += 601
    assert [w[0] for w in r.client.writes] == ["create"] * 12
    assert not any(w[2]["message"].startswith(COMBINED_PREFIX) for w in r.client.writes)


async def test_spam_filter_allows_a_burst_of_25_per_object_then_one_per_five_minutes():
    clock = Clock()
    r = recorder(clock)
    for _ in range(40):
        await r.event(POD, WARNING, "FailedScheduling", "0/3 nodes are available.")
    assert len(r.client.writes) == 25
    assert r.correlator.skipped == 15
    other = builders.pod("q", uid="uid-q")
    await r.event(other, WARNING, "FailedScheduling", "0/3 nodes are available.")  # another object: its own bucket
    assert len(r.client.writes) == 26
    clock.t += 299
    await r.event(POD, WARNING, "FailedScheduling", "0/3 nodes are available.")
    assert len(r.client.writes) == 26
    clock.t += 1
    await r.event(POD, WARNING, "FailedScheduling", "0/3 nodes are available.")
    assert len(r.client.writes) == 27
    # the count still says how often it happened, filtered occurrences included (client-go's eventLogger)
    assert r.client.writes[-1][2]["count"] == 42


async def test_a_patch_of_a_deleted_event_creates_it_again():
    r = recorder()
    await r.event(POD, WARNING, "FailedScheduling", "no")
    name = r.client.writes[0][1]
    r.client.gone.add(name)
    del r.client.events[name]
    await r.event(POD, WARNING, "FailedScheduling", "no")
    assert [w[0] for w in r.client.writes] == ["create", "create"]
    assert r.client.events[name]["count"] == 2


async def test_recording_never_raises():
    class Broken:
        async def create(self, ev):
            raise errors.ApiError.from_status({"code": 500, "message": "boom"})

    r = EventRecorder(Broken(), "x")
    await r.event(POD, WARNING, "Failed", "boom")
