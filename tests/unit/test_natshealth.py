"""k8n up's reading of a nats-server's JetStream health and its recovery from a full data disk (bus/natshealth.py);
the nats-server answers quoted are those of 2.15.1 on a full tmpfs."""

from __future__ import annotations

from bus.natshealth import HEADROOM, DiskFullRecovery, assess, room_needed
from bus.workqueue import FakeClock

MiB = 2**20
WRITE_ERROR = {"status": "unavailable", "error": "JetStream stream '$G > KV_b' write error: write /d/js/jetstream/"
               "$G/streams/KV_b/msgs/1.blk: no space left on device"}
OK = {"status": "ok"}


def jsz(storage: int, max_storage: int, disabled: bool = False) -> dict:
    return {"disabled": disabled, "storage": storage, "config": {"max_storage": max_storage}}



def test_assess():
    assert assess(OK, jsz(50_000, 30 * MiB)).ok
    s = assess(WRITE_ERROR, jsz(50_000, 30 * MiB))
    assert not s.ok and s.out_of_space and "no space left on device" in s.why
    # restarted on the full disk: it took 75% of the little that was free, less than it holds
    s = assess(OK, jsz(52_979, 39_732))
    assert not s.ok and s.out_of_space and s.storage == 52_979
    assert assess(OK, jsz(0, 0, disabled=True)).out_of_space
    other = assess({"status": "unavailable", "error": "JetStream stream 'x' is not current"}, jsz(1, 30 * MiB))
    assert not other.ok and not other.out_of_space
    assert assess(OK, None).ok


def test_a_full_disk_is_reported_restarted_once_then_again_once_space_is_freed():
    clock = FakeClock(0.0)
    r = DiskFullRecovery(clock.now, restart_gap=5)
    assert r.next(assess(OK, jsz(50_000, 30 * MiB)), 30 * MiB) is None
    assert r.next(None, 0) is None  # a server that does not answer (restarting) is the supervisor's business
    first = r.next(assess(WRITE_ERROR, jsz(50_000, 30 * MiB)), 0)
    assert first.restart and first.message.startswith("JetStream disabled itself: the data disk is full (")
    assert "retry" not in first.message and "again when space is freed" in first.message
    full = assess(OK, jsz(52_979, 39_732))  # the restarted server, still without room
    clock.advance(10)
    assert r.next(full, 50_000) is None  # no room yet: no restart
    assert r.next(full, room_needed(52_979) - 1) is None
    clock.advance(1)
    freed = r.next(full, 36 * MiB)
    assert freed.restart and "space was freed" in freed.message
    assert r.next(full, 36 * MiB) is None  # not twice within the gap
    back = r.next(assess(OK, jsz(52_979, 27 * MiB)), 36 * MiB)
    assert back is not None and not back.restart and "stores again" in back.message
    assert r.next(assess(OK, jsz(52_979, 27 * MiB)), 36 * MiB) is None


def test_room_needed_lets_the_restarted_server_hold_what_it_has_and_more():
    storage = 10 * MiB
    assert 0.75 * room_needed(storage) >= storage + HEADROOM
