"""The baseline checks of the Pod Security Standards, with Kubernetes' IDs, versions, reasons and details
(``pod-security-admission/policy/check_*.go``). Each is pure: ``(pod metadata, pod spec) -> CheckResult``."""

from __future__ import annotations

from master.apiserver.podsecurity.api import BASELINE
from master.apiserver.podsecurity.podview import (annotations, containers, containers_with, d, items, join_quote,
                                                  name, pluralize, sc, setters)
from master.apiserver.podsecurity.registry import ALLOWED, Check, CheckResult, VersionedCheck

# ---- appArmorProfile -------------------------------------------------------------------------------------------

APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
_APPARMOR_TYPES = ("RuntimeDefault", "Localhost")


def _apparmor_annotation_ok(value: str) -> bool:
    return value in ("", "runtime/default") or value.startswith("localhost/")


def app_armor_profile_1_0(meta: dict, spec: dict) -> CheckResult:
    bad_setters: list[str] = []
    bad_values: set[str] = set()
    profile = sc(spec).get("appArmorProfile")
    if isinstance(profile, dict) and profile.get("type") not in _APPARMOR_TYPES:
        bad_setters.append("pod")
        bad_values.add(str(profile.get("type") or ""))
    bad_containers = []
    for c in containers(spec):
        profile = sc(c).get("appArmorProfile")
        if isinstance(profile, dict) and profile.get("type") not in _APPARMOR_TYPES:
            bad_containers.append(name(c))
            bad_values.add(str(profile.get("type") or ""))
    if bad_containers:
        bad_setters.append(setters(False, bad_containers))
    values = sorted(bad_values)
    bad_annotations = sorted(f'{k}="{v}"' for k, v in annotations(meta).items()
                             if str(k).startswith(APPARMOR_ANNOTATION_PREFIX) and not _apparmor_annotation_ok(str(v)))
    if bad_annotations:
        values += bad_annotations
        bad_setters.append(pluralize("annotation", "annotations", len(bad_annotations)))
    if not bad_setters:
        return ALLOWED
    return CheckResult(False, pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
                       f"{' and '.join(bad_setters)} must not set AppArmor profile type to {join_quote(values)}")


# ---- capabilities_baseline -------------------------------------------------------------------------------------

CAPABILITIES_ALLOWED_1_0 = frozenset((
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"))


def capabilities_baseline_1_0(meta: dict, spec: dict) -> CheckResult:
    bad_containers, caps = containers_with(spec, lambda c: (
        str(x) for x in items(d(sc(c).get("capabilities")).get("add")) if x not in CAPABILITIES_ALLOWED_1_0))
    if not bad_containers:
        return ALLOWED
    return CheckResult(False, "non-default capabilities",
                       f"{setters(False, bad_containers)} must not include {join_quote(sorted(caps))} in "
                       "securityContext.capabilities.add")


# ---- hostNamespaces --------------------------------------------------------------------------------------------

def host_namespaces_1_0(meta: dict, spec: dict) -> CheckResult:
    used = sorted(k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True)
    if not used:
        return ALLOWED
    return CheckResult(False, "host namespaces", ", ".join(f"{k}=true" for k in used))


# ---- hostPathVolumes -------------------------------------------------------------------------------------------

def host_path_volumes_1_0(meta: dict, spec: dict) -> CheckResult:
    bad = [str(v.get("name") or "") for v in items(spec.get("volumes")) if isinstance(v, dict)
           and v.get("hostPath") is not None]
    if not bad:
        return ALLOWED
    return CheckResult(False, "hostPath volumes", f"{pluralize('volume', 'volumes', len(bad))} {join_quote(bad)}")


# ---- hostPorts -------------------------------------------------------------------------------------------------

def host_ports_1_0(meta: dict, spec: dict) -> CheckResult:
    bad_containers, ports = containers_with(spec, lambda c: (
        str(p.get("hostPort")) for p in items(c.get("ports")) if isinstance(p, dict) and p.get("hostPort")))
    if not bad_containers:
        return ALLOWED
    n = len(bad_containers)
    return CheckResult(False, "hostPort",
                       f"{setters(False, bad_containers)} {pluralize('uses', 'use', n)} "
                       f"{pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}")


# ---- hostProbesAndHostLifecycle --------------------------------------------------------------------------------

def _hosts(handler: object) -> list[str]:
    h = d(handler)
    return [str(d(h.get(k)).get("host")) for k in ("httpGet", "tcpSocket") if d(h.get(k)).get("host")]


def _probe_and_lifecycle_hosts(c: dict) -> list[str]:
    life = d(c.get("lifecycle"))
    return [h for handler in (c.get("livenessProbe"), c.get("readinessProbe"), c.get("startupProbe"),
                              life.get("postStart"), life.get("preStop")) for h in _hosts(handler)]


def host_probes_and_host_lifecycle_1_34(meta: dict, spec: dict) -> CheckResult:
    names, hosts = containers_with(spec, _probe_and_lifecycle_hosts)
    if not names:
        return ALLOWED
    bad_containers = sorted(set(names))  # Kubernetes keeps these in a set
    n = len(bad_containers)
    return CheckResult(False, "probe or lifecycle host",
                       f"{setters(False, bad_containers)} {pluralize('uses', 'use', n)} "
                       f"{pluralize('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
                       f"{join_quote(sorted(hosts))}")


# ---- privileged ------------------------------------------------------------------------------------------------

def privileged_1_0(meta: dict, spec: dict) -> CheckResult:
    bad = [name(c) for c in containers(spec) if sc(c).get("privileged") is True]
    if not bad:
        return ALLOWED
    return CheckResult(False, "privileged", f"{setters(False, bad)} must not set securityContext.privileged=true")


# ---- procMount -------------------------------------------------------------------------------------------------

def proc_mount_1_0(meta: dict, spec: dict) -> CheckResult:
    bad, types = containers_with(spec, lambda c: (
        [str(sc(c)["procMount"])] if sc(c).get("procMount") not in (None, "Default") else []))
    if not bad:
        return ALLOWED
    return CheckResult(False, "procMount",
                       f"{setters(False, bad)} must not set securityContext.procMount to {join_quote(sorted(types))}")


# ---- seLinuxOptions --------------------------------------------------------------------------------------------

SELINUX_TYPES_1_0 = frozenset(("", "container_t", "container_init_t", "container_kvm_t"))
SELINUX_TYPES_1_31 = SELINUX_TYPES_1_0 | {"container_engine_t"}


def _selinux(allowed: frozenset[str]):
    def check(meta: dict, spec: dict) -> CheckResult:
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}

        def ok(opts: dict) -> bool:
            good = True
            t = str(opts.get("type") or "")
            if t not in allowed:
                good = False
                bad_types.add(t)
            for k in flags:
                if opts.get(k):
                    flags[k] = True
                    good = False
            return good

        pod_bad = isinstance(sc(spec).get("seLinuxOptions"), dict) and not ok(sc(spec)["seLinuxOptions"])
        bad_containers = [name(c) for c in containers(spec)
                          if isinstance(sc(c).get("seLinuxOptions"), dict) and not ok(sc(c)["seLinuxOptions"])]
        if not pod_bad and not bad_containers:
            return ALLOWED
        data: list[str] = []
        if bad_types:
            data.append(f"{pluralize('type', 'types', len(bad_types))} {join_quote(sorted(bad_types))}")
        data += [f"{k} may not be set" for k in ("user", "role") if flags[k]]
        return CheckResult(False, "seLinuxOptions", f"{setters(pod_bad, bad_containers)} set forbidden "
                           f"securityContext.seLinuxOptions: {'; '.join(data)}")
    return check


# ---- seccompProfile_baseline -----------------------------------------------------------------------------------

SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
SECCOMP_TYPES = ("RuntimeDefault", "Localhost")


def _seccomp_annotation_ok(value: str) -> bool:
    return value in ("runtime/default", "docker/default") or value.startswith("localhost/")


def seccomp_profile_baseline_1_0(meta: dict, spec: dict) -> CheckResult:
    notes = annotations(meta)
    keys = [SECCOMP_POD_ANNOTATION] + [SECCOMP_CONTAINER_ANNOTATION_PREFIX + name(c) for c in containers(spec)]
    bad = sorted({f'{k}="{notes[k]}"' for k in keys if k in notes and not _seccomp_annotation_ok(str(notes[k]))})
    if not bad:
        return ALLOWED
    return CheckResult(False, "seccompProfile",
                       f"forbidden {pluralize('annotation', 'annotations', len(bad))} {', '.join(bad)}")


def bad_seccomp(spec: dict) -> tuple[bool, list[str], list[str], set[str]]:
    """(pod set a bad type, containers that set a bad type, containers that set none, the bad types) —
    shared with the restricted check, which also requires a profile."""
    values: set[str] = set()
    pod_profile = sc(spec).get("seccompProfile")
    pod_bad = isinstance(pod_profile, dict) and pod_profile.get("type") not in SECCOMP_TYPES
    if pod_bad:
        values.add(str(pod_profile.get("type") or ""))
    explicit, unset = [], []
    for c in containers(spec):
        profile = sc(c).get("seccompProfile")
        if isinstance(profile, dict):
            if profile.get("type") not in SECCOMP_TYPES:
                explicit.append(name(c))
                values.add(str(profile.get("type") or ""))
        else:
            unset.append(name(c))
    return pod_bad, explicit, unset, values


def seccomp_bad_setters(pod_bad: bool, explicit: list[str], values: set[str]) -> CheckResult:
    return CheckResult(False, "seccompProfile", f"{setters(pod_bad, explicit)} must not set "
                       f"securityContext.seccompProfile.type to {join_quote(sorted(values))}")


def seccomp_profile_baseline_1_19(meta: dict, spec: dict) -> CheckResult:
    pod_bad, explicit, _, values = bad_seccomp(spec)
    return seccomp_bad_setters(pod_bad, explicit, values) if pod_bad or explicit else ALLOWED


# ---- sysctls ---------------------------------------------------------------------------------------------------

SYSCTLS_1_0 = frozenset(("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                         "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"))
SYSCTLS_1_27 = SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
SYSCTLS_1_29 = SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                               "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
SYSCTLS_1_32 = SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def _sysctls(allowed: frozenset[str]):
    def check(meta: dict, spec: dict) -> CheckResult:
        bad = [str(s.get("name")) for s in items(sc(spec).get("sysctls"))
               if isinstance(s, dict) and s.get("name") not in allowed]
        return CheckResult(False, "forbidden sysctls", ", ".join(bad)) if bad else ALLOWED
    return check


# ---- windowsHostProcess ----------------------------------------------------------------------------------------

def windows_host_process_1_0(meta: dict, spec: dict) -> CheckResult:
    def host_process(obj: dict) -> bool:
        return d(sc(obj).get("windowsOptions")).get("hostProcess") is True

    bad = [name(c) for c in containers(spec) if host_process(c)]
    pod_bad = host_process(spec)
    if not pod_bad and not bad:
        return ALLOWED
    return CheckResult(False, "hostProcess",
                       f"{setters(pod_bad, bad)} must not set securityContext.windowsOptions.hostProcess=true")


def _check(id_: str, *versions: VersionedCheck) -> Check:
    return Check(id_, BASELINE, versions)


CHECKS = (
    _check("appArmorProfile", VersionedCheck(0, app_armor_profile_1_0)),
    _check("capabilities_baseline", VersionedCheck(0, capabilities_baseline_1_0)),
    _check("hostNamespaces", VersionedCheck(0, host_namespaces_1_0)),
    _check("hostPathVolumes", VersionedCheck(0, host_path_volumes_1_0)),
    _check("hostPorts", VersionedCheck(0, host_ports_1_0)),
    _check("hostProbesAndHostLifecycle", VersionedCheck(34, host_probes_and_host_lifecycle_1_34)),
    _check("privileged", VersionedCheck(0, privileged_1_0)),
    _check("procMount", VersionedCheck(0, proc_mount_1_0)),
    _check("seLinuxOptions", VersionedCheck(0, _selinux(SELINUX_TYPES_1_0)),
           VersionedCheck(31, _selinux(SELINUX_TYPES_1_31))),
    _check("seccompProfile_baseline", VersionedCheck(0, seccomp_profile_baseline_1_0),
           VersionedCheck(19, seccomp_profile_baseline_1_19)),
    _check("sysctls", VersionedCheck(0, _sysctls(SYSCTLS_1_0)), VersionedCheck(27, _sysctls(SYSCTLS_1_27)),
           VersionedCheck(29, _sysctls(SYSCTLS_1_29)), VersionedCheck(32, _sysctls(SYSCTLS_1_32))),
    _check("windowsHostProcess", VersionedCheck(0, windows_host_process_1_0)),
)
