"""The Pod Security admission step, as Kubernetes' ``pod-security-admission/admission``:

- a Pod create (or an update that changes what Kubernetes re-checks: an image, a seccomp annotation, an
  ephemeral container) is evaluated against the namespace's ``enforce`` level (403 ``pods "x" is forbidden:
  violates PodSecurity "baseline:latest": ...``), its ``audit`` level (logged) and ``warn`` level (a warning);
- a pod template (Deployment, ReplicaSet, ReplicationController, DaemonSet, Job, StatefulSet, CronJob,
  PodTemplate) only against audit and warn — its pods meet enforce when they are created;
- a Namespace's ``pod-security.kubernetes.io/*`` labels must parse (422 with the label's field path), and
  raising its enforce level answers warnings naming the existing pods that would now be refused.

Namespaces without labels get the API server's defaults (``ApiServerSettings.pod_security_*``); exempt
namespaces and users are not evaluated. Audit has no audit log to go to in k8n: a violation is logged by the API
server at INFO, under the annotation key Kubernetes would use (``pod-security.kubernetes.io/audit-violations``).
Everything but the namespace-label lookup and the pod list on a relabel is pure."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from bus import errors
from master.apiserver.podsecurity import evaluate_pod
from master.apiserver.podsecurity.api import (AUDIT_VIOLATIONS_ANNOTATION, PRIVILEGED, LevelVersion,
                                              Policy, compare_levels, parse_level, parse_version, policy_to_evaluate)
from master.apiserver.podsecurity.baseline import SECCOMP_CONTAINER_ANNOTATION_PREFIX, SECCOMP_POD_ANNOTATION
from master.apiserver.podsecurity.podview import d, items

log = logging.getLogger(__name__)

MAX_PODS_TO_CHECK = 3000  # Kubernetes' namespaceMaxPodsToCheck

#: where each kind keeps its pod template (Kubernetes' DefaultPodSpecExtractor)
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "PodTemplate": ("template",),
    "ReplicationController": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


@dataclass(frozen=True)
class PodSecurityConfig:
    defaults: Policy
    exempt_namespaces: frozenset[str] = frozenset()
    exempt_usernames: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, s: Any) -> "PodSecurityConfig":
        """From ``ApiServerSettings`` (already validated)."""
        def lv(level: str, version: str) -> LevelVersion:
            return LevelVersion(parse_level(level), parse_version(version))

        def names(value: str) -> frozenset[str]:
            return frozenset(n.strip() for n in (value or "").split(",") if n.strip())

        return cls(Policy(lv(s.pod_security_enforce, s.pod_security_enforce_version),
                          lv(s.pod_security_audit, s.pod_security_audit_version),
                          lv(s.pod_security_warn, s.pod_security_warn_version)),
                   names(s.pod_security_exempt_namespaces), names(s.pod_security_exempt_usernames))


def pod_template(kind: str, obj: dict) -> tuple[dict, dict] | None:
    """(metadata, spec) of the pod template of a workload ``obj``; None when it has none."""
    path = TEMPLATE_PATHS.get(kind)
    if path is None:
        return None
    t: Any = obj
    for p in path:
        t = t.get(p) if isinstance(t, dict) else None
    if not isinstance(t, dict):
        return None
    return d(t.get("metadata")), d(t.get("spec"))


def significant_pod_update(new: dict, old: dict) -> bool:
    """Kubernetes' isSignificantPodUpdate: pod specs are immutable but for images (and, in Kubernetes, seccomp
    annotations and ephemeral containers), so only those changes are evaluated again."""
    na, oa = d(d(new.get("metadata")).get("annotations")), d(d(old.get("metadata")).get("annotations"))
    if na.get(SECCOMP_POD_ANNOTATION) != oa.get(SECCOMP_POD_ANNOTATION):
        return True
    ns, os_ = d(new.get("spec")), d(old.get("spec"))
    for kind in ("containers", "initContainers"):
        new_cs, old_cs = items(ns.get(kind)), items(os_.get(kind))
        if len(new_cs) != len(old_cs):
            return True
        for nc, oc in zip(new_cs, old_cs):
            nc, oc = d(nc), d(oc)
            key = SECCOMP_CONTAINER_ANNOTATION_PREFIX + str(nc.get("name"))
            if nc.get("image") != oc.get("image") or na.get(key) != oa.get(key):
                return True
    old_eph = {str(d(c).get("name")): d(c) for c in items(os_.get("ephemeralContainers"))}
    for c in items(ns.get("ephemeralContainers")):
        c = d(c)
        oc = old_eph.get(str(c.get("name")))
        key = SECCOMP_CONTAINER_ANNOTATION_PREFIX + str(c.get("name"))
        if oc is None or c.get("image") != oc.get("image") or na.get(key) != oa.get(key):
            return True
    return False


def violation(lv: LevelVersion, detail: str) -> str:
    return f'would violate PodSecurity "{lv}": {detail}'


def namespace_pod_warnings(namespace: str, enforce: LevelVersion, pods: list[dict]) -> list[str]:
    """Kubernetes' EvaluatePodsInNamespace: one warning line per distinct set of reasons, naming the
    lexically first pod and how many others share it, after a header line."""
    total = len(pods)
    pods = pods[:MAX_PODS_TO_CHECK]
    first: dict[str, tuple[str, int]] = {}
    for pod in pods:
        r = evaluate_pod(enforce, d(pod.get("metadata")), d(pod.get("spec")))
        if r.allowed:
            continue
        reason = r.forbidden_reason()
        pname = str(d(pod.get("metadata")).get("name") or "")
        name, count = first.get(reason, (pname, 0))
        first[reason] = (min(name, pname), count + 1)
    out = []
    if len(pods) < total:
        out.append(f"new PodSecurity enforce level only checked against the first {len(pods)} of {total} "
                   "existing pods")
    if first:
        out.append(f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level "{enforce}"')
    lines = []
    for reason, (name, count) in first.items():
        others = "" if count == 1 else " (and 1 other pod)" if count == 2 else f" (and {count - 1} other pods)"
        lines.append(f"{name}{others}: {reason}")
    return out + sorted(lines)


LabelsOf = Callable[[str], Awaitable[dict]]
PodsIn = Callable[[str], Awaitable[list[dict]]]


class PodSecurityAdmission:
    """``admit`` for the API server's verbs; namespace labels come from ``labels_of`` (the namespace cache),
    the pods of a relabelled namespace from ``pods_in``."""

    def __init__(self, config: PodSecurityConfig, labels_of: LabelsOf, pods_in: PodsIn) -> None:
        self.config = config
        self.labels_of = labels_of
        self.pods_in = pods_in

    def policy(self, labels: dict | None) -> tuple[Policy, list[errors.Cause]]:
        return policy_to_evaluate(labels, self.config.defaults)

    async def admit(self, kind: str, namespace: str | None, user: str | None, obj: dict,
                    old: dict | None = None) -> list[str]:
        """Warnings for a main-resource create (``old`` None) or update of ``obj``; raises the 403/422."""
        if kind == "Namespace":
            return await self.admit_namespace(obj, old)
        if kind != "Pod" and kind not in TEMPLATE_PATHS:
            return []
        if not namespace or namespace in self.config.exempt_namespaces or (
                user and user in self.config.exempt_usernames):
            return []
        if kind == "Pod":
            if old is not None and not significant_pod_update(obj, old):
                return []
            return self._evaluate(await self._policy_of(namespace), kind, obj,
                                  d(obj.get("metadata")), d(obj.get("spec")), user, enforce=True)
        template = pod_template(kind, obj)
        if template is None:
            return []
        return self._evaluate(await self._policy_of(namespace), kind, obj, *template, user, enforce=False)

    async def _policy_of(self, namespace: str) -> tuple[Policy, bool]:
        policy, causes = self.policy(await self.labels_of(namespace))
        return policy, bool(causes)

    def _evaluate(self, policy_err: tuple[Policy, bool], kind: str, obj: dict, meta: dict, spec: dict,
                  user: str | None, enforce: bool) -> list[str]:
        """Enforce (pods only: a 403), audit (a log line) and warn (the warning returned) for one pod spec."""
        policy, bad_labels = policy_err
        if not bad_labels and policy.audit.level == PRIVILEGED and policy.warn.level == PRIVILEGED and (
                not enforce or policy.enforce.level == PRIVILEGED):
            return []
        obj_meta = d(obj.get("metadata"))
        results: dict[LevelVersion, Any] = {}

        def result(lv: LevelVersion) -> Any:
            if lv not in results:
                results[lv] = evaluate_pod(lv, meta, spec)
            return results[lv]

        name = str(obj_meta.get("name") or obj_meta.get("generateName") or "")
        denied = None
        if enforce:
            r = result(policy.enforce)
            if not r.allowed:
                denied = errors.forbidden(
                    "pods", name, f'violates PodSecurity "{policy.enforce}": {r.forbidden_detail()}')
        audit = result(policy.audit)
        if not audit.allowed:
            log.info("%s=%s kind=%s namespace=%s name=%s user=%s", AUDIT_VIOLATIONS_ANNOTATION,
                     json.dumps(violation(policy.audit, audit.forbidden_detail())), kind,
                     obj_meta.get("namespace"), name, user)
        if denied is not None:
            raise denied
        warn = result(policy.warn)
        return [] if warn.allowed else [violation(policy.warn, warn.forbidden_detail())]

    async def admit_namespace(self, obj: dict, old: dict | None) -> list[str]:
        meta = d(obj.get("metadata"))
        name = str(meta.get("name") or "")
        new_policy, new_causes = self.policy(d(meta.get("labels")))
        if old is None:
            if new_causes:
                raise errors.invalid("Namespace", name, new_causes)
            return []
        old_policy, old_causes = self.policy(d(d(old.get("metadata")).get("labels")))
        if new_causes and (not old_causes or new_causes != old_causes):
            raise errors.invalid("Namespace", name, new_causes)
        new_e, old_e = new_policy.enforce, old_policy.enforce
        if (new_e == old_e or new_e.level == PRIVILEGED
                or (new_e.version == old_e.version and compare_levels(new_e.level, old_e.level) < 1)
                or name in self.config.exempt_namespaces):
            return []
        return namespace_pod_warnings(name, new_e, await self.pods_in(name))

