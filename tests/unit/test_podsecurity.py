"""Pod Security Standards: every check against Kubernetes' own test cases (pod-security-admission/policy/
check_*_test.go) with the exact reasons and details, the evaluator's order, versions and overrides, label parsing,
and the admission step (403/422 texts, warnings, exemptions, namespace relabel) with in-memory namespaces."""

from __future__ import annotations

import logging

import pytest

from bus import errors
from master.apiserver.podsecurity import EVALUATOR, baseline, evaluate_pod, restricted
from master.apiserver.podsecurity.admission import (PodSecurityAdmission, PodSecurityConfig, namespace_pod_warnings,
                                                    pod_template, significant_pod_update)
from master.apiserver.podsecurity.api import (LATEST, LevelVersion, Policy, PolicyError, Version, parse_level,
                                              parse_version, policy_to_evaluate)


def spec(*containers: dict, init: tuple[dict, ...] = (), **fields) -> dict:
    out = {"containers": list(containers), **fields}
    if init:
        out["initContainers"] = list(init)
    return out


def c(name: str, **security) -> dict:
    out: dict = {"name": name, "image": "k8n/busybox:latest"}
    if security:
        out["securityContext"] = security
    return out


def denied(result, reason: str, detail: str) -> None:
    assert (result.allowed, result.reason, result.detail) == (False, reason, detail)


def hardened(name: str = "app") -> dict:
    return c(name, allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]}, runAsNonRoot=True,
             seccompProfile={"type": "RuntimeDefault"})


# ---- baseline checks ---------------------------------------------------------------------------------------------

def test_host_namespaces():
    assert baseline.host_namespaces_1_0({}, spec(c("a"), hostNetwork=False)).allowed
    denied(baseline.host_namespaces_1_0({}, spec(c("a"), hostNetwork=True, hostPID=True, hostIPC=True)),
           "host namespaces", "hostIPC=true, hostNetwork=true, hostPID=true")


def test_privileged():
    assert baseline.privileged_1_0({}, spec(c("a", privileged=False), c("b"))).allowed
    denied(baseline.privileged_1_0({}, spec(c("a", privileged=True), init=(c("i", privileged=True),))),
           "privileged", 'containers "i", "a" must not set securityContext.privileged=true')


def test_capabilities_baseline():
    ok = c("a", capabilities={"add": ["AUDIT_WRITE", "CHOWN", "NET_BIND_SERVICE", "SYS_CHROOT"], "drop": ["ALL"]})
    assert baseline.capabilities_baseline_1_0({}, spec(ok)).allowed
    pod = spec(c("a", capabilities={"add": ["FOO", "BAR"]}), c("b", capabilities={"add": ["BAR", "BAZ"]}),
               c("c", capabilities={"add": ["CHOWN", "KILL"]}))
    denied(baseline.capabilities_baseline_1_0({}, pod), "non-default capabilities",
           'containers "a", "b" must not include "BAR", "BAZ", "FOO" in securityContext.capabilities.add')


def test_host_path_volumes():
    assert baseline.host_path_volumes_1_0({}, spec(c("a"), volumes=[{"name": "e", "emptyDir": {}}])).allowed
    denied(baseline.host_path_volumes_1_0({}, spec(c("a"), volumes=[{"name": "a", "hostPath": {"path": "/"}},
                                                                    {"name": "b", "hostPath": {"path": "/x"}}])),
           "hostPath volumes", 'volumes "a", "b"')


def test_host_ports():  # TestHostPort
    pod = spec({"name": "a", "ports": [{"hostPort": 0}]}, {"name": "b", "ports": [{"hostPort": 0}, {"hostPort": 20}]})
    denied(baseline.host_ports_1_0({}, pod), "hostPort", 'container "b" uses hostPort 20')
    pod = spec({"name": "a", "ports": [{"hostPort": 0}]},
               {"name": "b", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 20}]},
               {"name": "c", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 30}]})
    denied(baseline.host_ports_1_0({}, pod), "hostPort", 'containers "b", "c" use hostPorts 10, 20, 30')
    assert baseline.host_ports_1_0({}, spec({"name": "a", "ports": [{"containerPort": 80}]})).allowed


def test_app_armor_profile():  # TestCheckAppArmor, TestCheckAppArmor_Forbidden
    for value in ("runtime/default", "localhost/sec-profile01", ""):
        assert baseline.app_armor_profile_1_0(
            {"annotations": {"container.apparmor.security.beta.kubernetes.io/test": value, "env": "prod"}}, {}).allowed
    assert baseline.app_armor_profile_1_0({}, {"securityContext": {"appArmorProfile": {"type": "Localhost"}}}).allowed
    denied(baseline.app_armor_profile_1_0({}, {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
           "forbidden AppArmor profile", 'pod must not set AppArmor profile type to "Unconfined"')
    pod = spec(c("foo"), init=(c("bar", appArmorProfile={"type": "Unconfined"}),),
               securityContext={"appArmorProfile": {"type": "RuntimeDefault"}})
    denied(baseline.app_armor_profile_1_0({}, pod), "forbidden AppArmor profile",
           'container "bar" must not set AppArmor profile type to "Unconfined"')
    p = "container.apparmor.security.beta.kubernetes.io/"
    meta = {"annotations": {p: "bogus", p + "a": "", p + "b": "runtime/default", p + "c": "localhost/",
                            p + "d": "localhost/foo", p + "e": "unconfined", p + "f": "unknown"}}
    denied(baseline.app_armor_profile_1_0(meta, {}), "forbidden AppArmor profiles",
           f'annotations must not set AppArmor profile type to "{p}="bogus"", "{p}e="unconfined"", "{p}f="unknown""')


def test_se_linux_options():  # TestSELinuxOptions (the v1.31 allowed types)
    check = check_at("seLinuxOptions", 31)
    good = [c(n, seLinuxOptions={"type": t}) for n, t in
            (("a", "container_t"), ("b", "container_init_t"), ("c", "container_kvm_t"), ("d", "container_engine_t"))]
    bad = [c("e", seLinuxOptions={"type": "bar"}), c("f", seLinuxOptions={"user": "bar"}),
           c("g", seLinuxOptions={"role": "baz"})]
    pod_bad = {"seLinuxOptions": {"type": "foo", "user": "bar", "role": "baz"}}
    denied(check({}, spec(*good, *bad, securityContext=pod_bad)), "seLinuxOptions",
           'pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: types "bar", "foo"; '
           "user may not be set; role may not be set")
    denied(check({}, spec(*good, securityContext=pod_bad)), "seLinuxOptions",
           'pod set forbidden securityContext.seLinuxOptions: type "foo"; user may not be set; role may not be set')
    denied(check({}, spec(*good, *bad, securityContext={"seLinuxOptions": {}})), "seLinuxOptions",
           'containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: type "bar"; user may not be set; '
           "role may not be set")
    denied(check({}, {"securityContext": {"seLinuxOptions": {"user": "bad"}}}), "seLinuxOptions",
           "pod set forbidden securityContext.seLinuxOptions: user may not be set")
    assert check({}, spec(*good)).allowed
    denied(check_at("seLinuxOptions", 30)({}, spec(good[3])), "seLinuxOptions",
           'container "d" set forbidden securityContext.seLinuxOptions: type "container_engine_t"')


def test_proc_mount():
    assert baseline.proc_mount_1_0({}, spec(c("a", procMount="Default"), c("b"))).allowed
    denied(baseline.proc_mount_1_0({}, spec(c("a", procMount="Unmasked"), c("b", procMount="Unmasked"))),
           "procMount", 'containers "a", "b" must not set securityContext.procMount to "Unmasked"')


def test_seccomp_baseline():
    assert baseline.seccomp_profile_baseline_1_19({}, spec(c("a"))).allowed  # unset is fine at baseline
    pod = spec(c("a", seccompProfile={"type": "Unconfined"}), c("b", seccompProfile={"type": "Localhost"}),
               securityContext={"seccompProfile": {"type": "Unconfined"}})
    denied(baseline.seccomp_profile_baseline_1_19({}, pod), "seccompProfile",
           'pod and container "a" must not set securityContext.seccompProfile.type to "Unconfined"')
    meta = {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined",
                            "container.seccomp.security.alpha.kubernetes.io/a": "docker/default"}}
    denied(check_at("seccompProfile_baseline", 18)(meta, spec(c("a"))), "seccompProfile",
           'forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined"')


def test_sysctls():  # TestSysctls, TestSysctls_1_27
    pod = {"securityContext": {"sysctls": [{"name": "a"}, {"name": "b"}]}}
    denied(check_at("sysctls", 0)({}, pod), "forbidden sysctls", "a, b")
    reserved = {"securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_reserved_ports", "value": "1024-4999"}]}}
    denied(check_at("sysctls", 26)({}, reserved), "forbidden sysctls", "net.ipv4.ip_local_reserved_ports")
    assert check_at("sysctls", 27)({}, reserved).allowed
    rmem = {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"}]}}
    assert not check_at("sysctls", 31)({}, rmem).allowed and check_at("sysctls", 32)({}, rmem).allowed


def test_windows_host_process():
    pod = spec(c("a", windowsOptions={"hostProcess": True}), c("b", windowsOptions={"hostProcess": False}),
               securityContext={"windowsOptions": {"hostProcess": True}})
    denied(baseline.windows_host_process_1_0({}, pod), "hostProcess",
           'pod and container "a" must not set securityContext.windowsOptions.hostProcess=true')


def test_probe_and_lifecycle_hosts():
    pod = spec({"name": "a", "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}},
                "lifecycle": {"preStop": {"tcpSocket": {"host": "example.com", "port": 1}}}},
               {"name": "b", "readinessProbe": {"httpGet": {"port": 80}}})
    denied(baseline.host_probes_and_host_lifecycle_1_34({}, pod), "probe or lifecycle host",
           'container "a" uses probe or lifecycle hosts "10.0.0.1", "example.com"')
    assert EVALUATOR.evaluate(LevelVersion("baseline", Version(33)), {}, pod).allowed


# ---- restricted checks -------------------------------------------------------------------------------------------

def test_allow_privilege_escalation():
    pod = spec(c("a"), c("b", allowPrivilegeEscalation=True), c("c", allowPrivilegeEscalation=False))
    denied(restricted.allow_privilege_escalation_1_8({}, pod), "allowPrivilegeEscalation != false",
           'containers "a", "b" must set securityContext.allowPrivilegeEscalation=false')


def test_capabilities_restricted():  # TestCapabilitiesRestricted
    pod = spec(c("a", capabilities={"add": ["FOO", "BAR"]}), c("b", capabilities={"add": ["BAR", "BAZ"]}),
               c("c", capabilities={"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL", "FOO"]}))
    denied(restricted.capabilities_restricted_1_22({}, pod), "unrestricted capabilities",
           'containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; containers "a", "b", "c" must not '
           'include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add')
    ok = c("a", capabilities={"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]})
    assert restricted.capabilities_restricted_1_22({}, spec(ok)).allowed


def test_restricted_volumes():
    ok = [{"name": n, k: {}} for n, k in (("cm", "configMap"), ("s", "secret"), ("e", "emptyDir"),
                                          ("p", "projected"), ("d", "downwardAPI"), ("pvc", "persistentVolumeClaim"))]
    assert restricted.restricted_volumes_1_0({}, spec(c("a"), volumes=ok)).allowed
    bad = [{"name": "h", "hostPath": {"path": "/"}}, {"name": "n", "nfs": {"server": "x", "path": "/"}},
           {"name": "h2", "hostPath": {"path": "/x"}}, {"name": "u"}]
    denied(restricted.restricted_volumes_1_0({}, spec(c("a"), volumes=ok + bad)), "restricted volume types",
           'volumes "h", "n", "h2", "u" use restricted volume types "hostPath", "nfs", "unknown"')
    denied(restricted.restricted_volumes_1_0({}, spec(c("a"), volumes=bad[:1])), "restricted volume types",
           'volume "h" uses restricted volume type "hostPath"')


def test_run_as_non_root():  # TestRunAsNonRoot
    check = restricted.run_as_non_root_1_0
    denied(check({}, spec({"name": "a"})), "runAsNonRoot != true",
           'pod or container "a" must set securityContext.runAsNonRoot=true')
    denied(check({}, spec({"name": "a"}, securityContext={"runAsNonRoot": False})), "runAsNonRoot != true",
           "pod must not set securityContext.runAsNonRoot=false")
    pod = spec({"name": "a"}, c("b"), c("c", runAsNonRoot=False), c("d", runAsNonRoot=False),
               c("e", runAsNonRoot=True), securityContext={"runAsNonRoot": True})
    denied(check({}, pod), "runAsNonRoot != true",
           'containers "c", "d" must not set securityContext.runAsNonRoot=false')
    pod = spec({"name": "a"}, c("b"), c("d", runAsNonRoot=True), c("e", runAsNonRoot=True))
    denied(check({}, pod), "runAsNonRoot != true",
           'pod or containers "a", "b" must set securityContext.runAsNonRoot=true')
    assert check({}, spec({"name": "a"}, securityContext={"runAsNonRoot": True})).allowed


def test_run_as_user():
    pod = spec(c("a", runAsUser=0), c("b", runAsUser=1000), securityContext={"runAsUser": 0})
    denied(restricted.run_as_user_1_23({}, pod), "runAsUser=0", 'pod and container "a" must not set runAsUser=0')
    assert restricted.run_as_user_1_23({}, spec(c("a", runAsUser=1000))).allowed


def test_seccomp_restricted():
    check = restricted.seccomp_profile_restricted_1_19
    denied(check({}, spec(c("a"), c("b", seccompProfile={"type": "Localhost", "localhostProfile": "p.json"}))),
           "seccompProfile", 'pod or container "a" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
           '"Localhost"')
    denied(check({}, spec(c("a", seccompProfile={"type": "Unconfined"}),
                          securityContext={"seccompProfile": {"type": "RuntimeDefault"}})),
           "seccompProfile", 'container "a" must not set securityContext.seccompProfile.type to "Unconfined"')
    assert check({}, spec(c("a"), securityContext={"seccompProfile": {"type": "RuntimeDefault"}})).allowed


# ---- the evaluator -----------------------------------------------------------------------------------------------

def check_at(check_id: str, minor: int):
    """The version of one check that applies at v1.<minor>."""
    check = next(ch for ch in baseline.CHECKS + restricted.CHECKS if ch.id == check_id)
    return next(v.fn for v in reversed(check.versions) if v.minimum <= minor)


BUSYBOX = {"containers": [{"name": "c", "image": "k8n/busybox:latest"}]}


def test_levels_order_and_overrides_as_kubernetes_reports_them():
    pod = {"hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
           "containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]}
    r = evaluate_pod(LevelVersion("baseline"), {}, pod)
    assert r.forbidden_detail() == ('host namespaces (hostNetwork=true), hostPath volumes (volume "h"), privileged '
                                    '(container "c" must not set securityContext.privileged=true)')
    r = evaluate_pod(LevelVersion("restricted"), {}, pod)
    assert r.reasons == ["host namespaces", "privileged", "allowPrivilegeEscalation != false",
                         "unrestricted capabilities", "restricted volume types", "runAsNonRoot != true",
                         "seccompProfile"]
    assert evaluate_pod(LevelVersion("privileged"), {}, pod).allowed
    # the common "default pod in a restricted namespace" answer, word for word
    assert evaluate_pod(LevelVersion("restricted"), {}, BUSYBOX).forbidden_detail() == (
        'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
        '"Localhost")')
    assert evaluate_pod(LevelVersion("baseline"), {}, BUSYBOX).allowed
    assert evaluate_pod(LevelVersion("restricted"), {}, {"containers": [hardened()]}).allowed


def test_versions_pick_the_checks_of_their_time():
    caps = {"containers": [c("c", allowPrivilegeEscalation=False, runAsNonRoot=True,
                             seccompProfile={"type": "RuntimeDefault"}, capabilities={"add": ["SYS_ADMIN"]})]}
    # before v1.22 the baseline capabilities check applies at restricted; from v1.22 the restricted one replaces it
    assert evaluate_pod(LevelVersion("restricted", Version(21)), {}, caps).reasons == ["non-default capabilities"]
    assert evaluate_pod(LevelVersion("restricted", Version(22)), {}, caps).reasons == ["unrestricted capabilities"]
    # runAsUser=0 is restricted from v1.23
    root = {"containers": [hardened()], "securityContext": {"runAsUser": 0}}
    assert evaluate_pod(LevelVersion("restricted", Version(22)), {}, root).allowed
    assert not evaluate_pod(LevelVersion("restricted", Version(23)), {}, root).allowed
    # versions past the newest check, and latest, evaluate as the newest (v1.34: probe and lifecycle hosts)
    assert EVALUATOR.max_version == Version(34)
    probe = {"containers": [{"name": "a", "livenessProbe": {"tcpSocket": {"host": "1.2.3.4", "port": 1}}}]}
    for version, allowed in ((Version(33), True), (Version(34), False), (Version(99), False), (LATEST, False)):
        assert evaluate_pod(LevelVersion("baseline", version), {}, probe).allowed is allowed, version


def test_versions_and_levels_parse_as_kubernetes():
    assert parse_version("latest") == LATEST and parse_version("v1.0") == Version(0)
    assert parse_version("v1.29") == Version(29)
    for bad in ("v1.01", "v2.0", "1.29", "v1", "", "v1.x", "Latest"):
        with pytest.raises(PolicyError, match='must be "latest" or "v1.x"'):
            parse_version(bad)
    with pytest.raises(PolicyError, match="must be one of privileged, baseline, restricted"):
        parse_level("Baseline")
    assert str(LevelVersion("restricted", Version(24))) == "restricted:v1.24"


DEFAULTS = Policy(LevelVersion("baseline"), LevelVersion("baseline"), LevelVersion("baseline"))


def test_labels_over_defaults_and_bad_labels_fail_closed_for_enforce_open_for_warn():
    p, causes = policy_to_evaluate({"pod-security.kubernetes.io/warn": "restricted",
                                    "pod-security.kubernetes.io/warn-version": "v1.25"}, DEFAULTS)
    assert causes == [] and p.warn == LevelVersion("restricted", Version(25)) and p.enforce == DEFAULTS.enforce
    p, causes = policy_to_evaluate({"pod-security.kubernetes.io/enforce": "strict",
                                    "pod-security.kubernetes.io/enforce-version": "1.25",
                                    "pod-security.kubernetes.io/warn": "none"}, DEFAULTS)
    assert p.enforce == LevelVersion("restricted") and p.warn.level == "privileged"
    assert [(x.field, x.message) for x in causes] == [
        ("metadata.labels[pod-security.kubernetes.io/enforce]",
         'Invalid value: "strict": must be one of privileged, baseline, restricted'),
        ("metadata.labels[pod-security.kubernetes.io/enforce-version]",
         'Invalid value: "1.25": must be "latest" or "v1.x"'),
        ("metadata.labels[pod-security.kubernetes.io/warn]",
         'Invalid value: "none": must be one of privileged, baseline, restricted')]


# ---- the admission step -----------------------------------------------------------------------------------------

def psa(namespaces: dict[str, dict], pods: dict[str, list[dict]] | None = None,
        exempt_users: frozenset[str] = frozenset()) -> PodSecurityAdmission:
    async def labels_of(ns: str) -> dict:
        return namespaces.get(ns, {})

    async def pods_in(ns: str) -> list[dict]:
        return (pods or {}).get(ns, [])

    return PodSecurityAdmission(PodSecurityConfig(DEFAULTS, frozenset({"kube-system"}), exempt_users),
                                labels_of, pods_in)


def pod(name: str, ns: str = "default", **spec_fields) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "k8n/busybox:latest"}], **spec_fields}}


HOSTPATH = {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}


async def test_pod_refused_with_kubernetes_403_and_warned_below_enforce(caplog):
    adm = psa({"default": {}, "strict": {"pod-security.kubernetes.io/warn": "restricted"}})
    with pytest.raises(errors.ApiError) as e:
        await adm.admit("Pod", "default", "alice", pod("x", hostNetwork=True, **HOSTPATH))
    assert e.value.code == 403 and e.value.status()["reason"] == "Forbidden"
    assert e.value.status()["message"] == ('pods "x" is forbidden: violates PodSecurity "baseline:latest": '
                                           'host namespaces (hostNetwork=true), hostPath volumes (volume "h")')
    assert await adm.admit("Pod", "default", "alice", pod("ok")) == []
    warnings = await adm.admit("Pod", "strict", "alice", pod("w", "strict"))
    assert len(warnings) == 1 and warnings[0].startswith(
        'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set ')
    # audit: the violation is logged under Kubernetes' audit annotation key
    with caplog.at_level(logging.INFO, "master.apiserver.podsecurity.admission"):
        with pytest.raises(errors.ApiError):
            await adm.admit("Pod", "default", "alice", pod("x", **HOSTPATH))
    assert [r.getMessage() for r in caplog.records] == [
        'pod-security.kubernetes.io/audit-violations="would violate PodSecurity \\"baseline:latest\\": hostPath '
        'volumes (volume \\"h\\")" kind=Pod namespace=default name=x user=alice']


async def test_exempt_namespaces_users_and_privileged_labels_admit_anything():
    adm = psa({"open": {"pod-security.kubernetes.io/enforce": "privileged",
                        "pod-security.kubernetes.io/warn": "privileged",
                        "pod-security.kubernetes.io/audit": "privileged"}}, exempt_users=frozenset({"ops"}))
    bad = pod("x", hostPID=True, **HOSTPATH)
    assert await adm.admit("Pod", "kube-system", "alice", bad) == []
    assert await adm.admit("Pod", "open", "alice", bad) == []
    assert await adm.admit("Pod", "default", "ops", bad) == []


async def test_pod_templates_warn_and_never_refuse():
    adm = psa({})
    tmpl = {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "c", "image": "x"}],
                                                          "hostNetwork": True}}
    deploy = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
              "spec": {"template": tmpl}}
    assert await adm.admit("Deployment", "default", "alice", deploy) == [
        'would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true)']
    cron = {"spec": {"jobTemplate": {"spec": {"template": tmpl}}}}
    assert pod_template("CronJob", cron) == (tmpl["metadata"], tmpl["spec"])
    assert pod_template("ReplicationController", {"spec": {}}) is None
    assert await adm.admit("ConfigMap", "default", "alice", {"data": {}}) == []


async def test_only_significant_pod_updates_are_evaluated():
    old = pod("x", **HOSTPATH)  # admitted before the namespace was labelled
    relabelled = {**old, "metadata": {**old["metadata"], "labels": {"a": "b"}}}
    assert not significant_pod_update(relabelled, old)
    assert await psa({}).admit("Pod", "default", "alice", relabelled, old) == []
    new_image = pod("x", **HOSTPATH)
    new_image["spec"]["containers"][0]["image"] = "k8n/busybox:1.36"
    assert significant_pod_update(new_image, old)
    with pytest.raises(errors.ApiError):
        await psa({}).admit("Pod", "default", "alice", new_image, old)


async def test_namespace_labels_are_validated_with_422():
    adm = psa({})
    ns = {"metadata": {"name": "team", "labels": {"pod-security.kubernetes.io/enforce": "strict"}}}
    with pytest.raises(errors.ApiError) as e:
        await adm.admit("Namespace", None, "alice", ns)
    st = e.value.status()
    assert e.value.code == 422 and st["reason"] == "Invalid"
    assert st["message"] == ('Namespace "team" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
                             'Invalid value: "strict": must be one of privileged, baseline, restricted')
    assert st["details"]["causes"] == [{"reason": "FieldValueInvalid", "field":
                                        "metadata.labels[pod-security.kubernetes.io/enforce]", "message":
                                        'Invalid value: "strict": must be one of privileged, baseline, restricted'}]
    # an update that leaves the same bad labels alone passes (as in Kubernetes); a new bad one does not
    assert await adm.admit("Namespace", None, "alice", ns, ns) == []
    worse = {"metadata": {"name": "team", "labels": {**ns["metadata"]["labels"],
                                                     "pod-security.kubernetes.io/warn-version": "v2"}}}
    with pytest.raises(errors.Invalid):
        await adm.admit("Namespace", None, "alice", worse, ns)


async def test_raising_enforce_warns_about_existing_pods():
    running = [pod("b"), pod("a"), pod("c"), pod("h", **HOSTPATH)]
    adm = psa({}, {"team": running})
    old = {"metadata": {"name": "team", "labels": {}}}
    new = {"metadata": {"name": "team", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    warnings = await adm.admit("Namespace", None, "alice", new, old)
    restricted_reasons = ("allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, "
                          "seccompProfile")
    assert warnings == [
        'existing pods in namespace "team" violate the new PodSecurity enforce level "restricted:latest"',
        f"a (and 2 other pods): {restricted_reasons}",
        "h: allowPrivilegeEscalation != false, unrestricted capabilities, restricted volume types, "
        "runAsNonRoot != true, seccompProfile"]
    # relaxing, privileged, or an exempt namespace: nothing to check
    assert await adm.admit("Namespace", None, "alice", old, new) == []
    assert await adm.admit("Namespace", None, "alice", {"metadata": {"name": "team", "labels": {
        "pod-security.kubernetes.io/enforce": "privileged"}}}, old) == []
    assert await psa({}, {"kube-system": running}).admit(
        "Namespace", None, "alice", {"metadata": {"name": "kube-system", "labels": new["metadata"]["labels"]}},
        {"metadata": {"name": "kube-system"}}) == []


def test_namespace_warnings_cap_and_count():
    pods = [pod(f"p{i:04d}", hostPID=True) for i in range(3002)]
    w = namespace_pod_warnings("big", LevelVersion("baseline"), pods)
    assert w == ["new PodSecurity enforce level only checked against the first 3000 of 3002 existing pods",
                 'existing pods in namespace "big" violate the new PodSecurity enforce level "baseline:latest"',
                 "p0000 (and 2999 other pods): host namespaces"]


def test_config_from_settings():
    from master.apiserver.settings import ApiServerSettings

    s = ApiServerSettings.load({"pod-security-enforce": "restricted", "pod-security-warn-version": "v1.30",
                                "pod-security-exempt-namespaces": "kube-system, infra", "pod-security-exempt-usernames":
                                "ops"}, environ={})
    cfg = PodSecurityConfig.from_settings(s)
    assert cfg.defaults.enforce == LevelVersion("restricted") and cfg.defaults.warn == LevelVersion(
        "baseline", Version(30))
    assert cfg.exempt_namespaces == {"kube-system", "infra"} and cfg.exempt_usernames == {"ops"}
    from bus.settings import SettingsError
    with pytest.raises(SettingsError, match="K8N_POD_SECURITY_AUDIT_VERSION='1.30': must be \"latest\" or \"v1.x\""):
        ApiServerSettings.load({"pod-security-audit-version": "1.30"}, environ={})
