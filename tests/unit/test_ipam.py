"""Host-local IPAM: idempotent per owner, round-robin, exhaustion, persistence, uniqueness."""

from __future__ import annotations

import ipaddress
import json
import threading

import pytest

from node.network.ipam import Ipam, IpamError, RangeExhausted


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state" / "ipam.json"


def test_gateway_is_first_address_and_pods_start_at_two(state):
    ipam = Ipam("10.244.1.0/24", state)
    assert ipam.gateway == "10.244.1.1"
    assert ipam.size == 253
    assert ipam.allocate("pod-a") == "10.244.1.2"
    assert ipam.allocate("pod-b") == "10.244.1.3"


def test_allocate_is_idempotent_per_owner(state):
    ipam = Ipam("10.244.1.0/24", state)
    first = ipam.allocate("pod-a")
    ipam.allocate("pod-b")
    assert ipam.allocate("pod-a") == first
    assert ipam.allocated() == {"pod-a": "10.244.1.2", "pod-b": "10.244.1.3"}


def test_freed_address_is_not_reused_at_once(state):
    ipam = Ipam("10.244.1.0/24", state)
    a = ipam.allocate("pod-a")
    assert ipam.release("pod-a") == a
    assert ipam.release("pod-a") is None  # idempotent
    assert ipam.allocate("pod-b") == "10.244.1.3"
    assert "pod-a" not in ipam.allocated()


def test_round_robin_wraps_and_skips_taken_addresses(state):
    ipam = Ipam("10.244.1.0/29", state)  # pods .2 … .6
    ips = [ipam.allocate(f"p{i}") for i in range(5)]
    assert ips == [f"10.244.1.{i}" for i in range(2, 7)]
    ipam.release("p1")  # .3
    ipam.release("p3")  # .5
    assert ipam.allocate("q1") == "10.244.1.3"  # wraps past .6 to the first free one
    assert ipam.allocate("q2") == "10.244.1.5"


def test_exhaustion_raises_a_clear_error_and_release_makes_room(state):
    ipam = Ipam("10.244.1.0/29", state)
    for i in range(5):
        ipam.allocate(f"p{i}")
    with pytest.raises(RangeExhausted, match=r"10\.244\.1\.0/29 is exhausted"):
        ipam.allocate("one-too-many")
    assert "one-too-many" not in ipam.allocated()
    ipam.release("p2")
    assert ipam.allocate("one-too-many") == "10.244.1.4"


def test_gateway_network_and_broadcast_are_never_handed_out(state):
    ipam = Ipam("10.244.1.0/24", state)
    ips = {ipam.allocate(f"p{i}") for i in range(253)}
    assert len(ips) == 253
    assert not ips & {"10.244.1.0", "10.244.1.1", "10.244.1.255"}
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.244.1.0/24") for ip in ips)


def test_state_survives_a_new_instance(state):
    first = Ipam("10.244.1.0/24", state)
    a = first.allocate("pod-a")
    first.allocate("pod-b")
    first.release("pod-b")

    again = Ipam("10.244.1.0/24", state)  # the agent restarted
    assert again.allocated() == {"pod-a": a}
    assert again.allocate("pod-a") == a
    assert again.allocate("pod-c") == "10.244.1.4"  # round-robin position survives too: .3 was just freed


def test_state_file_is_written_atomically(state):
    ipam = Ipam("10.244.1.0/24", state)
    ipam.allocate("pod-a")
    assert json.loads(state.read_text())["owners"] == {"pod-a": "10.244.1.2"}
    assert [p.name for p in state.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_state_of_another_range_is_refused(state):
    Ipam("10.244.1.0/24", state).allocate("pod-a")
    with pytest.raises(IpamError, match="10.244.1.0/24, not 10.244.2.0/24"):
        Ipam("10.244.2.0/24", state)


def test_clear_forgets_everything(state):
    ipam = Ipam("10.244.1.0/24", state)
    ipam.allocate("pod-a")
    ipam.clear()
    assert not state.exists()
    assert Ipam("10.244.1.0/24", state).allocated() == {}


def test_never_two_owners_with_one_ip_across_instances_and_threads(state):
    instances = [Ipam("10.244.1.0/24", state) for _ in range(4)]

    def work(n: int) -> None:
        ipam = instances[n]
        for i in range(40):
            ipam.allocate(f"w{n}-p{i}")
            if i % 3 == 0:
                ipam.release(f"w{n}-p{i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    owners = Ipam("10.244.1.0/24", state).allocated()
    assert len(owners) == 4 * (40 - 14)
    assert len(set(owners.values())) == len(owners)
