"""The start steps of ``k8n up`` (bus.cli.startup): when a Lease counts as renewed by this run, when a node is
Ready, and how a step waits — done, timed out naming what did not happen, failed because its component keeps
dying (with the end of its log), or interrupted by a signal."""

import asyncio
import subprocess
import time

import pytest

from bus.cli import startup
from bus.cli.runner import Child
from bus.meta import format_time
from tests import builders


def lease(holder, renewed):
    return {"spec": {"holderIdentity": holder, "renewTime": format_time(renewed, micro=True)}}


def test_a_lease_counts_once_held_and_renewed_by_this_run():
    start = time.time()
    assert startup.renewed_since(lease("cm-1", start + 0.5), start)
    assert startup.renewed_since(lease("cm-1", start - 0.5), start)  # times are to the second at worst
    assert not startup.renewed_since(lease("cm-1", start - 30), start)  # a previous run's
    assert not startup.renewed_since(lease("", start + 1), start)  # released
    assert not startup.renewed_since(None, start)


def test_node_ready():
    assert startup.node_ready(builders.node("n1", ready=True))
    assert not startup.node_ready(builders.node("n1", ready=False))
    assert not startup.node_ready(builders.node("n1"))


def run(coro):
    return asyncio.run(coro)


def test_until_returns_what_the_check_answers_once_it_answers():
    calls = []

    async def check():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("not yet")
        return "ok"

    assert run(startup.until(check, 5, lambda: False, [], "never")) == "ok"
    assert len(calls) == 3


def test_until_times_out_naming_what_did_not_happen_and_the_last_reason():
    async def check():
        raise startup.StepFailed("no leader yet: scheduler")

    with pytest.raises(startup.StepFailed) as e:
        run(startup.until(check, 0.3, lambda: False, [], "the control plane did not elect its leaders"))
    assert str(e.value) == ("the control plane did not elect its leaders in 0.3s (last: no leader yet: scheduler)")


def test_until_stops_on_a_signal():
    async def check():
        return False

    with pytest.raises(startup.Stopping):
        run(startup.until(check, 5, lambda: True, [], "x"))


def test_a_component_that_keeps_dying_fails_its_step_with_the_end_of_its_log(tmp_path):
    log = tmp_path / "apiserver.log"
    log.write_text("starting\nerror: K8N_KV_REPLICAS='x': expected an integer\n\n")
    child = Child("apiserver", ["false"], log)
    child.proc = subprocess.Popen(["false"])
    child.proc.wait()
    child.restarts = startup.DIES - 2
    assert startup.dying([child]) is None  # died twice: not yet
    child.restarts = startup.DIES - 1

    async def check():
        return False

    with pytest.raises(startup.StepFailed) as e:
        run(startup.until(check, 5, lambda: False, [child], "x"))
    assert str(e.value) == (f"apiserver exited with code 1 (3 times); see {log}: error: K8N_KV_REPLICAS='x': "
                            "expected an integer")


def test_steps_are_checked_at_once_and_printed_in_order_each_with_its_own_time():
    import io

    from bus.cli.progress import Steps

    out = io.StringIO()
    launched = time.monotonic()
    s = startup.Startup(None, Steps(out, tty=False), lambda: False, launched, time.time())

    def after(seconds):
        async def check():
            return time.monotonic() - launched >= seconds
        return check

    s.add("slow", after(0.6), 5, [], "slow did not happen", "first")
    s.add("quick", after(0.0), 5, [], "quick did not happen", "second")
    run(s.run())
    lines = [ln.split() for ln in out.getvalue().splitlines()]
    assert [ln[0] for ln in lines] == ["slow", "quick"] and lines[0][2] == "first"
    assert float(lines[0][1].rstrip("s")) >= 0.6 > float(lines[1][1].rstrip("s"))  # quick's own time, not slow's

    out.truncate(0)
    s.plan.clear()
    s.add("never", after(99), 0.2, [], "never did not happen")
    with pytest.raises(startup.StepFailed) as e:
        run(s.run())
    assert str(e.value) == "never: never did not happen in 0.2s"
    assert "never" in out.getvalue() and "FAILED after" in out.getvalue()
