"""The pure parts of the pod network across machines: VTEP MACs, the backend each peer gets, the pods' MTU,
the agent's backend setting."""

from __future__ import annotations

import pytest

from bus import settings
from bus.settings import SettingsError
from node.agent import AgentConfig
from node.network import PodNetwork
from node.network.overlay import backend_for, check_backend, pod_mtu, split_peers, vtep_mac


def test_a_vtep_mac_is_derived_from_the_node_ip_and_is_locally_administered_unicast():
    mac = vtep_mac("192.168.7.21")
    assert mac == "0a:58:c0:a8:07:15"
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01  # locally administered, not multicast
    assert vtep_mac("192.168.7.21") == mac and vtep_mac("192.168.7.22") != mac
    with pytest.raises(ValueError):
        vtep_mac("fd00::1")


def test_auto_routes_directly_connected_peers_with_host_gw_and_the_others_over_vxlan():
    peers = {"10.244.1.0/24": "192.168.1.11", "10.244.2.0/24": "192.168.2.12", "10.244.3.0/24": "192.168.1.13"}
    direct = {"192.168.1.11", "192.168.1.13"}
    assert split_peers(peers, "auto", direct) == (
        {"10.244.1.0/24": "192.168.1.11", "10.244.3.0/24": "192.168.1.13"}, {"10.244.2.0/24": "192.168.2.12"})
    assert split_peers(peers, "vxlan", direct) == ({}, peers)
    assert split_peers(peers, "host-gw", set()) == (peers, {})
    assert backend_for("auto", True) == "host-gw" and backend_for("auto", False) == "vxlan"


def test_the_pods_mtu_leaves_room_for_vxlan_unless_the_backend_is_host_gw():
    assert pod_mtu("host-gw") == 1500
    assert pod_mtu("auto") == pod_mtu("vxlan") == 1450
    assert pod_mtu("auto", 9000) == 8950 and pod_mtu("host-gw", 1400) == 1400


def test_an_unknown_backend_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="'overlay': expected one of auto, host-gw, vxlan"):
        check_backend("overlay")
    with pytest.raises(ValueError, match="expected one of"):
        PodNetwork("n1", "10.244.1.0/24", tmp_path, backend="flannel")


def test_the_agent_setting_defaults_to_auto_and_a_bad_value_stops_the_agent(tmp_path):
    base = {"name": "n1", "server": "nats://127.0.0.1:4222", "state_dir": tmp_path}
    assert AgentConfig(**base).network_backend == "auto"
    chosen = settings.given(AgentConfig, None, {"K8N_NETWORK_BACKEND": "vxlan"})
    assert AgentConfig(**base, **chosen).network_backend == "vxlan"
    with pytest.raises(SettingsError, match="K8N_NETWORK_BACKEND.*'vxlam': expected one of auto, host-gw, vxlan"):
        AgentConfig(**base, **settings.given(AgentConfig, {"network-backend": "vxlam"}, {}))
