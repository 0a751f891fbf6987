"""The restricted checks of the Pod Security Standards, with Kubernetes' IDs, versions, reasons and details
(``pod-security-admission/policy/check_*.go``), and the baseline checks each one replaces.

Two deliberate differences from Kubernetes, both because k8n runs every pod as a Linux container: pods with
``spec.os.name: windows`` are not exempt from allowPrivilegeEscalation, capabilities and seccomp (Kubernetes
exempts them from v1.25, trusting the node to refuse them), and ``hostUsers: false`` does not relax runAsNonRoot
or runAsUser (k8n does not run pods in user namespaces, so root in the pod is root on the node)."""

from __future__ import annotations

from master.apiserver.podsecurity.api import RESTRICTED
from master.apiserver.podsecurity.baseline import bad_seccomp, seccomp_bad_setters
from master.apiserver.podsecurity.podview import containers, d, items, join_quote, name, pluralize, sc, setters
from master.apiserver.podsecurity.registry import ALLOWED, Check, CheckResult, VersionedCheck


def allow_privilege_escalation_1_8(meta: dict, spec: dict) -> CheckResult:
    bad = [name(c) for c in containers(spec) if sc(c).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return ALLOWED
    return CheckResult(False, "allowPrivilegeEscalation != false",
                       f"{setters(False, bad)} must set securityContext.allowPrivilegeEscalation=false")


def capabilities_restricted_1_22(meta: dict, spec: dict) -> CheckResult:
    missing_drop_all: list[str] = []
    adding: list[str] = []
    caps: set[str] = set()
    for c in containers(spec):
        capabilities = sc(c).get("capabilities")
        if not isinstance(capabilities, dict):
            missing_drop_all.append(name(c))
            continue
        if "ALL" not in items(capabilities.get("drop")):
            missing_drop_all.append(name(c))
        bad = [str(x) for x in items(capabilities.get("add")) if x != "NET_BIND_SERVICE"]
        if bad:
            adding.append(name(c))
            caps.update(bad)
    details = []
    if missing_drop_all:
        details.append(f'{setters(False, missing_drop_all)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{setters(False, adding)} must not include {join_quote(sorted(caps))} in "
                       "securityContext.capabilities.add")
    return CheckResult(False, "unrestricted capabilities", "; ".join(details)) if details else ALLOWED


RESTRICTED_VOLUME_OK = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                        "projected", "secret")
RESTRICTED_VOLUME_TYPES = (
    "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs", "rbd",
    "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte", "azureDisk",
    "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos")


def restricted_volumes_1_0(meta: dict, spec: dict) -> CheckResult:
    bad: list[str] = []
    types: set[str] = set()
    for v in items(spec.get("volumes")):
        if not isinstance(v, dict) or any(v.get(k) is not None for k in RESTRICTED_VOLUME_OK):
            continue
        bad.append(str(v.get("name") or ""))
        types.add(next((t for t in RESTRICTED_VOLUME_TYPES if v.get(t) is not None), "unknown"))
    if not bad:
        return ALLOWED
    return CheckResult(False, "restricted volume types",
                       f"{pluralize('volume', 'volumes', len(bad))} {join_quote(bad)} "
                       f"{pluralize('uses', 'use', len(bad))} "
                       f"{pluralize('restricted volume type', 'restricted volume types', len(types))} "
                       f"{join_quote(sorted(types))}")


def run_as_non_root_1_0(meta: dict, spec: dict) -> CheckResult:
    pod_value = sc(spec).get("runAsNonRoot")
    pod_bad, pod_non_root = pod_value is False, pod_value is True
    explicit, implicit = [], []
    for c in containers(spec):
        value = sc(c).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit.append(name(c))
        elif not pod_non_root:
            implicit.append(name(c))
    if pod_bad or explicit:
        return CheckResult(False, "runAsNonRoot != true",
                           f"{setters(pod_bad, explicit)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return CheckResult(False, "runAsNonRoot != true",
                           f"pod or {setters(False, implicit)} must set securityContext.runAsNonRoot=true")
    return ALLOWED


def run_as_user_1_23(meta: dict, spec: dict) -> CheckResult:
    def root(obj: dict) -> bool:
        value = sc(obj).get("runAsUser")
        return value == 0 and value is not False

    pod_bad = root(spec)
    bad = [name(c) for c in containers(spec) if root(c)]
    if not pod_bad and not bad:
        return ALLOWED
    return CheckResult(False, "runAsUser=0", f"{setters(pod_bad, bad)} must not set runAsUser=0")


def seccomp_profile_restricted_1_19(meta: dict, spec: dict) -> CheckResult:
    pod_bad, explicit, unset, values = bad_seccomp(spec)
    if pod_bad or explicit:
        return seccomp_bad_setters(pod_bad, explicit, values)
    pod_set = isinstance(d(sc(spec)).get("seccompProfile"), dict)
    if unset and not pod_set:
        return CheckResult(False, "seccompProfile",
                           f'pod or {setters(False, unset)} must set securityContext.seccompProfile.type to '
                           '"RuntimeDefault" or "Localhost"')
    return ALLOWED


def _check(id_: str, *versions: VersionedCheck) -> Check:
    return Check(id_, RESTRICTED, versions)


CHECKS = (
    _check("allowPrivilegeEscalation", VersionedCheck(8, allow_privilege_escalation_1_8)),
    _check("capabilities_restricted",
           VersionedCheck(22, capabilities_restricted_1_22, ("capabilities_baseline",))),
    _check("restrictedVolumes", VersionedCheck(0, restricted_volumes_1_0, ("hostPathVolumes",))),
    _check("runAsNonRoot", VersionedCheck(0, run_as_non_root_1_0)),
    _check("runAsUser", VersionedCheck(23, run_as_user_1_23)),
    _check("seccompProfile_restricted",
           VersionedCheck(19, seccomp_profile_restricted_1_19, ("seccompProfile_baseline",))),
)
