"""securityContext as the API validates it and as the node turns it into Docker create arguments (pure parts of
``bus.validation``, ``node.runtime.security`` and ``node.network.hostports``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bus.models import Pod
from bus.resources import by_plural
from bus.validation import security_warnings, validate_object
from node.network.hostports import HostPort, host_ports, render, table_name
from node.runtime import security
from node.volumes import Volumes
from tests.builders import container, pod

PODS = by_plural("pods")
UID = "0b5ec2a4-1a8e-4d7b-9bb7-2f4f2f7e0c11"


def _pod(csc: dict | None = None, **spec) -> dict:
    c = container("main", "sleep 1", **({"securityContext": csc} if csc is not None else {}))
    return pod("web", "ns1", containers=spec.pop("containers", [c]), uid=UID, **spec)


def _causes(p: dict) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in validate_object(PODS, p)[1]]


# ---- validation ----------------------------------------------------------------------------------------------------

def test_ids_capabilities_and_profiles_are_validated_as_kubernetes_does():
    assert _causes(_pod(securityContext={"runAsUser": -1, "supplementalGroups": [5, 2147483648]})) == [
        ("spec.securityContext.runAsUser", "Invalid value: -1: must be between 0 and 2147483647, inclusive"),
        ("spec.securityContext.supplementalGroups[1]",
         "Invalid value: 2147483648: must be between 0 and 2147483647, inclusive")]
    assert _causes(_pod({"seccompProfile": {"type": "Localhost"}})) == [
        ("spec.containers[0].securityContext.seccompProfile.localhostProfile",
         "Required value: must be set when seccomp type is Localhost")]
    assert _causes(_pod({"seccompProfile": {}})) == [
        ("spec.containers[0].securityContext.seccompProfile.type",
         "Required value: type is required when seccompProfile is set")]
    assert _causes(_pod({"capabilities": {"add": ["NET_ADMIN", "cap_sys_time", "ALL", "NET_FOO"]}})) == [
        ("spec.containers[0].securityContext.capabilities.add[3]",
         "Invalid value: \"NET_FOO\": must be a Linux capability (e.g. 'NET_ADMIN' or 'CAP_NET_ADMIN') or 'ALL'")]
    assert _causes(_pod({"privileged": True, "allowPrivilegeEscalation": False}))[0][1].endswith(
        "cannot set `allowPrivilegeEscalation` to false and `privileged` to true")
    assert _causes(_pod({"allowPrivilegeEscalation": False, "capabilities": {"add": ["CAP_SYS_ADMIN"]}}))[0][1] \
        .endswith("cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN")
    assert _causes(_pod({"procMount": "Unmasked"})) == [
        ("spec.containers[0].securityContext.procMount", 'Invalid value: "Unmasked": `hostUsers` must be false to '
                                                          "use `Unmasked`")]
    assert _causes(_pod(hostPID=True, shareProcessNamespace=True)) == [
        ("spec.securityContext.shareProcessNamespace",
         "Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled")]


def test_sysctl_names_and_host_namespaces():
    sysctls = [{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "Kernel.X", "value": "1"},
               {"name": "net.ipv4.tcp_syncookies", "value": "0"}, {"name": "kernel.shm_rmid_forced", "value": "1"}]
    fields = _causes(_pod(securityContext={"sysctls": sysctls}, hostIPC=True))
    assert [f for f, _ in fields] == ["spec.securityContext.sysctls[1].name", "spec.securityContext.sysctls[2].name",
                                      "spec.securityContext.sysctls[3].name"]
    assert fields[1][1] == 'Duplicate value: "net.ipv4.tcp_syncookies"'
    assert fields[2][1] == "Invalid value: \"kernel.shm_rmid_forced\": may not be specified when 'hostIPC' is true"


def test_what_k8n_cannot_apply_is_refused_when_ignoring_it_weakens_isolation_else_warned():
    assert _causes(_pod({"seccompProfile": {"type": "Localhost", "localhostProfile": "audit.json"}})) == [
        ("spec.containers[0].securityContext.seccompProfile.type",
         "Forbidden: k8n cannot apply Localhost seccomp profiles (its nodes load no profile files); use "
         "RuntimeDefault, or Unconfined")]
    assert _causes(_pod(securityContext={"windowsOptions": {"hostProcess": True}}))[0][0] == \
        "spec.securityContext.windowsOptions.hostProcess"
    assert _causes(_pod(hostUsers=False))[0][0] == "spec.hostUsers"
    assert _causes(_pod(securityContext={"supplementalGroupsPolicy": "Strict"}))[0][0] == \
        "spec.securityContext.supplementalGroupsPolicy"
    assert _causes(_pod(securityContext={"supplementalGroupsPolicy": "Merge"})) == []
    p = _pod({"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-nginx"}},
             securityContext={"seLinuxOptions": {"level": "s0:c1"}, "appArmorProfile": {"type": "RuntimeDefault"}})
    assert _causes(p) == []
    assert security_warnings(Pod.model_validate(p)) == [
        "spec.securityContext.seLinuxOptions: k8n does not apply SELinux labels; the field is stored and ignored",
        "spec.containers[0].securityContext.appArmorProfile: k8n does not load AppArmor profiles (Docker applies its "
        "default profile where the host has AppArmor); the field is stored and ignored"]
    assert security_warnings(Pod.model_validate(_pod({"runAsUser": 1}))) == []


def test_host_ports_conflict_and_follow_the_container_port_with_host_network():
    ports = [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 8080},
             {"containerPort": 82, "hostPort": 8080, "protocol": "UDP"}]
    assert _causes(_pod(containers=[container("a", ports=ports)])) == [
        ("spec.containers[0].ports[1].hostPort", 'Duplicate value: "TCP//8080"')]
    assert _causes(_pod(containers=[container("a", ports=[{"containerPort": 80, "hostPort": 80,
                                                           "hostIP": "10.0.0.300"}])])) == [
        ("spec.containers[0].ports[0].hostIP",
         'Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)')]
    model, causes = validate_object(PODS, _pod(containers=[container("a", ports=[{"containerPort": 80}])],
                                               hostNetwork=True))
    assert causes == [] and model.spec.containers[0].ports[0].host_port == 80  # defaulted as Kubernetes does
    assert _causes(_pod(containers=[container("a", ports=[{"containerPort": 80, "hostPort": 81}])],
                        hostNetwork=True)) == [
        ("spec.containers[0].ports[0].containerPort", "Invalid value: 80: must match `hostPort` when `hostNetwork` "
                                                       "is true")]


# ---- the Docker arguments ----------------------------------------------------------------------------------------

def test_users_groups_and_pod_defaults_with_the_container_winning():
    p = _pod({"runAsUser": 1001}, securityContext={"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000],
                                                    "fsGroup": 2000, "seccompProfile": {"type": "Unconfined"}})
    create, host = security.container_args(p, p["spec"]["containers"][0])
    assert create == {"user": "1001:3000"}
    assert host == {"group_add": ["4000", "2000"], "security_opt": ["seccomp=unconfined"]}
    p = _pod({"runAsGroup": 5})  # a group alone keeps the image's user
    assert security.needs_image_user(p, p["spec"]["containers"][0])
    assert security.container_args(p, p["spec"]["containers"][0], "nobody:x")[0] == {"user": "nobody:5"}
    assert security.container_args(p, p["spec"]["containers"][0], "")[0] == {"user": "0:5"}
    assert security.container_args(_pod(), _pod()["spec"]["containers"][0]) == ({}, {})  # Docker's defaults


def test_capabilities_privilege_escalation_read_only_and_seccomp():
    c = {"capabilities": {"drop": ["all"], "add": ["cap_net_admin", "NET_BIND_SERVICE"]},
         "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
         "seccompProfile": {"type": "RuntimeDefault"}}
    p = _pod(c)
    assert security.container_args(p, p["spec"]["containers"][0])[1] == {
        "cap_add": ["NET_ADMIN", "NET_BIND_SERVICE"], "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
        "read_only": True}
    p = _pod({"privileged": True, "capabilities": {"drop": ["ALL"]}})
    assert security.container_args(p, p["spec"]["containers"][0])[1] == {"privileged": True}
    # a node that cannot grant every capability: the ones it has, unconfined, no masked paths
    host = security.container_args(p, p["spec"]["containers"][0], node_caps=["CHOWN", "SYS_ADMIN"])[1]
    assert host == {"cap_add": ["CHOWN", "SYS_ADMIN"], "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
                    "device_cgroup_rules": ["a *:* rwm"], "MaskedPaths": [], "ReadonlyPaths": []}


def test_node_capabilities_from_the_bounding_set():
    assert security.node_capabilities("CapBnd:\t000001ffffffffff\n", "40\n") is None
    caps = security.node_capabilities("CapBnd:\t000001fffeffffff\n", "40\n")
    assert "SYS_RESOURCE" not in caps and "SYS_ADMIN" in caps and caps[-1] == "AUDIT_READ"


def test_namespaces_of_the_sandbox_and_its_containers():
    p = _pod(securityContext={"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "40000 50000"}]})
    assert security.sandbox_args(p, "web") == (
        {"network_disabled": True, "hostname": "web"},
        {"ipc_mode": "shareable", "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
         "sysctls": {"net.ipv4.ip_local_port_range": "40000 50000"}})
    assert security.namespaces(p, "sb") == {"network_mode": "container:sb", "ipc_mode": "container:sb"}
    host = _pod(hostNetwork=True, hostPID=True, hostIPC=True)
    create, hc = security.sandbox_args(host, "web")
    assert create == {} and (hc["network_mode"], hc["pid_mode"], hc["ipc_mode"]) == ("host", "host", "host")
    assert security.namespaces(host, "sb") == {"network_mode": "container:sb", "ipc_mode": "host", "pid_mode": "host"}
    assert security.namespaces(_pod(shareProcessNamespace=True), "sb")["pid_mode"] == "container:sb"


def test_run_as_non_root_as_the_kubelet_verifies_it():
    p = _pod({"runAsNonRoot": True})
    c = p["spec"]["containers"][0]
    where = f'(pod: "web_ns1({UID})", container: main)'
    assert security.run_as_non_root_error(p, c, "") == f"container has runAsNonRoot and image will run as root {where}"
    assert security.run_as_non_root_error(p, c, "0:0") == \
        f"container has runAsNonRoot and image will run as root {where}"
    assert security.run_as_non_root_error(p, c, "nobody") == (
        f"container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root {where}")
    assert security.run_as_non_root_error(p, c, "1000:1000") is None
    p = _pod({"runAsNonRoot": True, "runAsUser": 0})
    assert security.run_as_non_root_error(p, p["spec"]["containers"][0], "") == \
        f"container's runAsUser breaks non-root policy {where}"
    p = _pod({"runAsUser": 1000}, securityContext={"runAsNonRoot": True})
    assert not security.needs_image_user(p, p["spec"]["containers"][0])
    assert security.run_as_non_root_error(p, p["spec"]["containers"][0], None) is None


def test_only_the_kubelets_safe_sysctls_pass_the_nodes_admission():
    def sysctls(*names, **spec):
        return _pod(securityContext={"sysctls": [{"name": n, "value": "1"} for n in names]}, **spec)

    assert security.forbidden_sysctl(sysctls("kernel.shm_rmid_forced", "net/ipv4/tcp_syncookies")) is None
    assert security.forbidden_sysctl(sysctls("net.ipv4.tcp_syncookies", "net.core.somaxconn")) == \
        'forbidden sysctl: "net.core.somaxconn" not allowlisted'
    assert security.forbidden_sysctl(sysctls("net.ipv4.tcp_syncookies", hostNetwork=True)) == \
        'forbidden sysctl: "net.ipv4.tcp_syncookies" not allowed with host net enabled'


# ---- hostPort ----------------------------------------------------------------------------------------------------

def test_host_port_mappings_and_their_nft_table():
    p = _pod(containers=[container("a", ports=[{"containerPort": 8080, "hostPort": 80},
                                               {"containerPort": 53, "hostPort": 5353, "protocol": "UDP",
                                                "hostIP": "192.0.2.7"},
                                               {"containerPort": 9090},
                                               {"containerPort": 9091, "hostPort": 9091, "hostIP": "2001:db8::1"}])])
    ports = host_ports(p)
    assert ports == [HostPort("tcp", "", 80, 8080), HostPort("udp", "192.0.2.7", 5353, 53)]
    assert table_name("n1").startswith("k8n-hp-") and table_name("n1") != table_name("n2")
    tx = render(table_name("n1"), "198.51.100.1", {UID: ("10.244.1.5", tuple(ports))})
    rules = [c["add"]["rule"] for c in tx.cmds if "rule" in c.get("add", {})]
    dnat = [r["expr"] for r in rules if r["chain"] == "hostports"]
    assert [(e[0]["match"]["right"], e[1]["match"]["right"], e[2]["match"]["right"], e[3]["dnat"]) for e in dnat] == [
        ("198.51.100.1", "tcp", 80, {"addr": "10.244.1.5", "port": 8080}),
        ("192.0.2.7", "udp", 5353, {"addr": "10.244.1.5", "port": 53})]
    hooks = {c["add"]["chain"]["name"]: c["add"]["chain"].get("hook") for c in tx.cmds if "chain" in c.get("add", {})}
    assert hooks == {"nat-prerouting": "prerouting", "nat-output": "output", "nat-postrouting": "postrouting",
                     "hostports": None}  # from elsewhere and from the node itself
    assert [r["chain"] for r in rules].count("nat-postrouting") == 2  # the hairpin masquerade


# ---- volume ownership ----------------------------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to a group needs root")
async def test_fs_group_owns_every_volume_as_the_kubelet_makes_it(tmp_path):
    async def get(resource, name, namespace):
        assert (resource, name, namespace) == ("configmaps", "cfg", "ns1")
        return {"data": {"color": "blue"}}

    volumes = Volumes(tmp_path / "pods", get)
    p = _pod(securityContext={"fsGroup": 2000}, volumes=[
        {"name": "scratch", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels/name", "fieldRef": {
            "fieldPath": "metadata.name"}}]}}])
    paths = {k: Path(v) for k, v in (await volumes.prepare(p)).items()}

    def owner(path):
        st = os.stat(path)
        return st.st_gid, stat.S_IMODE(st.st_mode) | (st.st_mode & stat.S_ISGID)

    assert owner(paths["scratch"]) == (2000, 0o2777)
    assert owner(paths["cfg"]) == (2000, 0o2755) and owner(paths["cfg"] / "color") == (2000, 0o644)
    assert (paths["info"] / "labels" / "name").read_text() == "web"
    assert owner(paths["info"] / "labels") == (2000, 0o2755)
    assert stat.S_IMODE(os.stat(paths["scratch"].parent.parent).st_mode) == 0o750
    volumes.cleanup(UID)
    assert not paths["scratch"].exists()
    paths = {k: Path(v) for k, v in (await volumes.prepare(_pod(volumes=[{"name": "s", "emptyDir": {}}]))).items()}
    assert owner(paths["s"]) == (0, 0o777)  # no fsGroup: any container user may write it
    volumes.cleanup(UID)
