"""Just enough of Kubernetes' protobuf encoding to read what kubectl's typed client sends.

A body is ``k8s\\0`` followed by a ``runtime.Unknown`` message (1: TypeMeta{1: apiVersion, 2: kind},
2: raw — the object's own message). kubectl's typed client sends protobuf for ``create namespace``,
``create serviceaccount|configmap|secret|deployment|job|service|role|rolebinding|clusterrole|clusterrolebinding|
cronjob|quota|priorityclass|poddisruptionbudget|ingress|token``, ``create job --from=cronjob/X`` and ``drain`` (an
Eviction with DeleteOptions);
those kinds are decoded into the JSON shape, others are refused (415: send JSON — ``create -f`` and
``apply`` do). Decoding is strict: a set field this module does not know is a 415 too, never dropped.
Zero scalars are left out, as JSON's ``omitempty`` leaves them out (Kubernetes' protobuf writes
every non-pointer field).
"""

from __future__ import annotations

import base64
from typing import Any, Iterator

from bus import errors

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

# message schemas: field number -> (json name, type); type is "str", "int", "bool", "bytes" (base64 in
# JSON), "map" / "bytesmap" (map entries with string / bytes values), "ignore" (read-only parts:
# status), a schema name (a nested message), or "[...]" for repeated. Numbers as in Kubernetes'
# generated.proto files. ObjectMeta's 8 (creationTimestamp) is ignored: the server sets it.
_SCHEMAS: dict[str, dict[int, tuple[str, str]]] = {
    "TypeMeta": {1: ("apiVersion", "str"), 2: ("kind", "str")},
    "ObjectMeta": {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"), 5: ("uid", "str"),
                   6: ("resourceVersion", "str"), 7: ("generation", "int"), 8: ("creationTimestamp", "ignore"),
                   11: ("labels", "map"), 12: ("annotations", "map"), 13: ("ownerReferences", "[OwnerReference]"),
                   14: ("finalizers", "[str]")},
    "OwnerReference": {1: ("kind", "str"), 3: ("name", "str"), 4: ("uid", "str"), 5: ("apiVersion", "str"),
                       6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "Preconditions": {1: ("uid", "str"), 2: ("resourceVersion", "str")},
    "DeleteOptions": {1: ("gracePeriodSeconds", "int"), 2: ("preconditions", "Preconditions"),
                      3: ("orphanDependents", "bool"), 4: ("propagationPolicy", "str"), 5: ("dryRun", "[str]")},
    "NamespaceSpec": {1: ("finalizers", "[str]")},
    "ObjectReference": {1: ("kind", "str"), 2: ("namespace", "str"), 3: ("name", "str"), 4: ("uid", "str"),
                        5: ("apiVersion", "str"), 6: ("resourceVersion", "str"), 7: ("fieldPath", "str")},
    "LocalObjectReference": {1: ("name", "str")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta"), 2: ("secrets", "[ObjectReference]"),
                       3: ("imagePullSecrets", "[LocalObjectReference]"),
                       4: ("automountServiceAccountToken", "bool")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map"), 3: ("binaryData", "bytesmap"),
                  4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "bytesmap"), 3: ("type", "str"), 4: ("stringData", "map"),
               5: ("immutable", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec"), 3: ("status", "ignore")},
    "LabelSelectorRequirement": {1: ("key", "str"), 2: ("operator", "str"), 3: ("values", "[str]")},
    "LabelSelector": {1: ("matchLabels", "map"), 2: ("matchExpressions", "[LabelSelectorRequirement]")},
    "ContainerPort": {1: ("name", "str"), 2: ("hostPort", "int"), 3: ("containerPort", "int"),
                      4: ("protocol", "str"), 5: ("hostIP", "str")},
    "EnvVar": {1: ("name", "str"), 2: ("value", "str")},
    "ResourceRequirements": {1: ("limits", "quantitymap"), 2: ("requests", "quantitymap")},
    "VolumeMount": {1: ("name", "str"), 2: ("readOnly", "bool"), 3: ("mountPath", "str"), 4: ("subPath", "str")},
    "PodSecurityContext": {},  # empty as kubectl's generators send it; anything set is refused, never dropped
    "Container": {1: ("name", "str"), 2: ("image", "str"), 3: ("command", "[str]"), 4: ("args", "[str]"),
                  5: ("workingDir", "str"), 6: ("ports", "[ContainerPort]"), 7: ("env", "[EnvVar]"),
                  8: ("resources", "ResourceRequirements"), 9: ("volumeMounts", "[VolumeMount]"),
                  13: ("terminationMessagePath", "str"),
                  14: ("imagePullPolicy", "str"), 16: ("stdin", "bool"), 17: ("stdinOnce", "bool"),
                  18: ("tty", "bool"), 20: ("terminationMessagePolicy", "str")},
    "PodSpec": {2: ("containers", "[Container]"), 3: ("restartPolicy", "str"),
                4: ("terminationGracePeriodSeconds", "int"), 5: ("activeDeadlineSeconds", "int"),
                6: ("dnsPolicy", "str"), 7: ("nodeSelector", "map"), 8: ("serviceAccountName", "str"),
                10: ("nodeName", "str"), 11: ("hostNetwork", "bool"), 14: ("securityContext", "PodSecurityContext"),
                16: ("hostname", "str"), 17: ("subdomain", "str"), 19: ("schedulerName", "str"),
                20: ("initContainers", "[Container]"), 21: ("automountServiceAccountToken", "bool"),
                24: ("priorityClassName", "str"), 30: ("enableServiceLinks", "bool")},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "DeploymentStrategy": {1: ("type", "str")},
    "DeploymentSpec": {1: ("replicas", "int"), 2: ("selector", "LabelSelector"), 3: ("template", "PodTemplateSpec"),
                       4: ("strategy", "DeploymentStrategy"), 5: ("minReadySeconds", "int"),
                       6: ("revisionHistoryLimit", "int"), 7: ("paused", "bool"),
                       9: ("progressDeadlineSeconds", "int")},
    "Deployment": {1: ("metadata", "ObjectMeta"), 2: ("spec", "DeploymentSpec"), 3: ("status", "ignore")},
    "JobSpec": {1: ("parallelism", "int"), 2: ("completions", "int"), 3: ("activeDeadlineSeconds", "int"),
                4: ("selector", "LabelSelector"), 5: ("manualSelector", "bool"), 6: ("template", "PodTemplateSpec"),
                7: ("backoffLimit", "int"), 8: ("ttlSecondsAfterFinished", "int"), 9: ("completionMode", "str"),
                10: ("suspend", "bool"), 14: ("podReplacementPolicy", "str"), 15: ("managedBy", "str")},
    "Job": {1: ("metadata", "ObjectMeta"), 2: ("spec", "JobSpec"), 3: ("status", "ignore")},
    # batch/v1 CronJob (kubectl create cronjob)
    "JobTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "JobSpec")},
    "CronJobSpec": {1: ("schedule", "str"), 2: ("startingDeadlineSeconds", "int"), 3: ("concurrencyPolicy", "str"),
                    4: ("suspend", "bool"), 5: ("jobTemplate", "JobTemplateSpec"),
                    6: ("successfulJobsHistoryLimit", "int"), 7: ("failedJobsHistoryLimit", "int"),
                    8: ("timeZone", "str")},
    "CronJob": {1: ("metadata", "ObjectMeta"), 2: ("spec", "CronJobSpec"), 3: ("status", "ignore")},
    # core/v1 ResourceQuota (kubectl create quota)
    "ScopedResourceSelectorRequirement": {1: ("scopeName", "str"), 2: ("operator", "str"), 3: ("values", "[str]")},
    "ScopeSelector": {1: ("matchExpressions", "[ScopedResourceSelectorRequirement]")},
    "ResourceQuotaSpec": {1: ("hard", "quantitymap"), 2: ("scopes", "[str]"), 3: ("scopeSelector", "ScopeSelector")},
    "ResourceQuota": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ResourceQuotaSpec"), 3: ("status", "ignore")},
    # scheduling.k8s.io/v1 PriorityClass (kubectl create priorityclass): value is not omitempty
    "PriorityClass": {1: ("metadata", "ObjectMeta"), 2: ("value", "int0"), 3: ("globalDefault", "bool"),
                      4: ("description", "str"), 5: ("preemptionPolicy", "str")},
    # policy/v1 PodDisruptionBudget (kubectl create poddisruptionbudget)
    "PodDisruptionBudgetSpec": {1: ("minAvailable", "intorstr"), 2: ("selector", "LabelSelector"),
                                3: ("maxUnavailable", "intorstr"), 4: ("unhealthyPodEvictionPolicy", "str")},
    "PodDisruptionBudget": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodDisruptionBudgetSpec"),
                            3: ("status", "ignore")},
    # networking.k8s.io/v1 Ingress (kubectl create ingress); IngressRule inlines its IngressRuleValue
    "TypedLocalObjectReference": {1: ("apiGroup", "str"), 2: ("kind", "str"), 3: ("name", "str")},
    "ServiceBackendPort": {1: ("name", "str"), 2: ("number", "int")},
    "IngressServiceBackend": {1: ("name", "str"), 2: ("port", "ServiceBackendPort")},
    "IngressBackend": {3: ("resource", "TypedLocalObjectReference"), 4: ("service", "IngressServiceBackend")},
    "IngressTLS": {1: ("hosts", "[str]"), 2: ("secretName", "str")},
    "HTTPIngressPath": {1: ("path", "str"), 2: ("backend", "IngressBackend"), 3: ("pathType", "str")},
    "HTTPIngressRuleValue": {1: ("paths", "[HTTPIngressPath]")},
    "IngressRuleValue": {1: ("http", "HTTPIngressRuleValue")},
    "IngressRule": {1: ("host", "str"), 2: ("", "inline:IngressRuleValue")},
    "IngressSpec": {1: ("defaultBackend", "IngressBackend"), 2: ("tls", "[IngressTLS]"), 3: ("rules", "[IngressRule]"),
                    4: ("ingressClassName", "str")},
    "Ingress": {1: ("metadata", "ObjectMeta"), 2: ("spec", "IngressSpec"), 3: ("status", "ignore")},
    "ServicePort": {1: ("name", "str"), 2: ("protocol", "str"), 3: ("port", "int"), 4: ("targetPort", "intorstr"),
                    5: ("nodePort", "int")},
    "ServiceSpec": {1: ("ports", "[ServicePort]"), 2: ("selector", "map"), 3: ("clusterIP", "str"), 4: ("type", "str"),
                    5: ("externalIPs", "[str]"), 10: ("externalName", "str")},
    "Service": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ServiceSpec"), 3: ("status", "ignore")},
    "Eviction": {1: ("metadata", "ObjectMeta"), 2: ("deleteOptions", "DeleteOptions")},
    # authentication.k8s.io/v1 (kubectl create token) and authorization.k8s.io/v1 (kubectl auth can-i)
    "BoundObjectReference": {1: ("kind", "str"), 2: ("apiVersion", "str"), 3: ("name", "str"), 4: ("uid", "str")},
    "TokenRequestSpec": {1: ("audiences", "[str]"), 3: ("boundObjectRef", "BoundObjectReference"),
                         4: ("expirationSeconds", "int")},
    "TokenRequest": {1: ("metadata", "ObjectMeta"), 2: ("spec", "TokenRequestSpec"), 3: ("status", "ignore")},
    "ResourceAttributes": {1: ("namespace", "str"), 2: ("verb", "str"), 3: ("group", "str"), 4: ("version", "str"),
                           5: ("resource", "str"), 6: ("subresource", "str"), 7: ("name", "str")},
    "NonResourceAttributes": {1: ("path", "str"), 2: ("verb", "str")},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes"),
                                    2: ("nonResourceAttributes", "NonResourceAttributes")},
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectAccessReviewSpec"),
                                3: ("status", "ignore")},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "str")},
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectRulesReviewSpec"),
                               3: ("status", "ignore")},
    # rbac.authorization.k8s.io/v1 (kubectl create role|clusterrole|rolebinding|clusterrolebinding)
    "PolicyRule": {1: ("verbs", "[str]"), 2: ("apiGroups", "[str]"), 3: ("resources", "[str]"),
                   4: ("resourceNames", "[str]"), 5: ("nonResourceURLs", "[str]")},
    "AggregationRule": {1: ("clusterRoleSelectors", "[LabelSelector]")},
    "Role": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[PolicyRule]")},
    "ClusterRole": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[PolicyRule]"),
                    3: ("aggregationRule", "AggregationRule")},
    "Subject": {1: ("kind", "str"), 2: ("apiGroup", "str"), 3: ("name", "str"), 4: ("namespace", "str")},
    "RoleRef": {1: ("apiGroup", "str"), 2: ("kind", "str"), 3: ("name", "str")},
    "RoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", "[Subject]"), 3: ("roleRef", "RoleRef")},
    "ClusterRoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", "[Subject]"), 3: ("roleRef", "RoleRef")},
}
KINDS = ("Namespace", "ServiceAccount", "ConfigMap", "Secret", "Deployment", "Job", "Service", "Eviction",
         "DeleteOptions", "TokenRequest", "SelfSubjectAccessReview", "SelfSubjectRulesReview", "Role", "ClusterRole",
         "RoleBinding", "ClusterRoleBinding", "CronJob", "ResourceQuota", "PriorityClass", "PodDisruptionBudget",
         "Ingress")


class Unsupported(ValueError):
    """A set field this module cannot read."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, varint value or length-delimited bytes); fixed-width fields are skipped."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
            yield num, v
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field")
            yield num, buf[i:i + n]
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if i != len(buf):
        raise ValueError("truncated message")


def _value(typ: str, raw: int | bytes) -> Any:
    if typ == "int":
        if not isinstance(raw, int):
            raise ValueError("expected a varint")
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    if typ == "int0":
        return _value("int", raw)
    if typ == "bool":
        return bool(raw)
    if not isinstance(raw, bytes):
        raise ValueError("expected a length-delimited field")
    if typ == "str":
        return raw.decode()
    if typ == "bytes":
        return base64.b64encode(raw).decode()
    if typ == "intorstr":  # IntOrString{1: type (0 int, 1 string), 2: intVal, 3: strVal}
        f = dict(_fields(raw))
        return f.get(3, b"").decode() if f.get(1) == 1 else _value("int", f.get(2, 0))
    return decode_message(typ, raw)


def _empty(raw: int | bytes) -> bool:
    return raw == 0 or raw == b""


def decode_message(schema: str, buf: bytes) -> dict:
    fields = _SCHEMAS[schema]
    out: dict[str, Any] = {}
    for num, raw in _fields(buf):
        if num not in fields:
            if _empty(raw):
                continue
            raise Unsupported(f"field {num} of {schema}")
        name, typ = fields[num]
        if typ == "ignore":
            continue
        if typ in ("map", "bytesmap", "quantitymap"):
            if not isinstance(raw, bytes):
                raise ValueError("expected a map entry")
            entry = {n: v for n, v in _fields(raw) if isinstance(v, bytes)}
            value = entry.get(2, b"")
            if typ == "quantitymap":  # resource.Quantity{1: string}
                value = dict(_fields(value)).get(1, b"")
            out.setdefault(name, {})[entry.get(1, b"").decode()] = (
                base64.b64encode(value).decode() if typ == "bytesmap" else value.decode())
        elif typ.startswith("inline:"):  # an embedded struct whose fields JSON puts in the parent
            if not isinstance(raw, bytes):
                raise ValueError("expected a length-delimited field")
            out.update(decode_message(typ[len("inline:"):], raw))
        elif typ.startswith("["):
            out.setdefault(name, []).append(_value(typ[1:-1], raw))
        elif typ in ("str", "int", "bool") and _empty(raw):
            continue
        else:
            value = _value(typ, raw)
            if value != {}:
                out[name] = value
    return out


def _envelope(buf: bytes) -> dict:
    """runtime.Unknown, keeping ``raw`` as bytes."""
    out: dict[str, Any] = {}
    for num, raw in _fields(buf):
        if num == 1 and isinstance(raw, bytes):
            out["typeMeta"] = decode_message("TypeMeta", raw)
        elif num == 2 and isinstance(raw, bytes):
            out["raw"] = raw
    return out


def decode(body: bytes) -> dict:
    """The JSON form of a protobuf-encoded object; BadRequest/415 Status errors otherwise."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("the protobuf body does not start with the k8s envelope")
    try:
        unknown = _envelope(body[len(MAGIC):])
        tm = unknown.get("typeMeta") or {}
        kind = tm.get("kind", "")
        if kind not in KINDS:
            raise errors.ApiError(415, f"k8n reads protobuf only for {', '.join(KINDS)}; send {kind or 'it'} "
                                       "as application/json", "UnsupportedMediaType")
        obj = decode_message(kind, unknown.get("raw") or b"")
    except Unsupported as e:
        raise errors.ApiError(415, f"k8n cannot read {e} in a protobuf body; send it as application/json",
                              "UnsupportedMediaType") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.bad_request(f"the protobuf body could not be decoded: {e}") from None
    return {"kind": kind, "apiVersion": tm.get("apiVersion", ""), **obj}
