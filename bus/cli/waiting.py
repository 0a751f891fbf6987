"""When an applied object is ready (``k8n apply --wait``): pure functions over object dicts, one per kind.

Workloads are rolled out under ``kubectl rollout status``'s conditions (the Deployment's are
:func:`bus.cli.rollout.status_message`'s; StatefulSets' and DaemonSets' follow kubectl's status viewers), Jobs are
complete (``Failed`` fails), Pods Ready, Services that select pods have a ready endpoint, PVCs are Bound and CRDs
Established; any other kind is ready once applied. :func:`pod_problem` says why a pod is not getting ready, for the
message of a wait that times out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from bus.meta import get_condition


@dataclass(frozen=True)
class State:
    """Where an object is: ``text`` for the user; ``done`` (ready) or ``failed`` (it will not get ready)."""

    text: str
    done: bool = False
    failed: bool = False


READY = State("ready", done=True)


def _spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def _status(obj: dict) -> dict:
    return obj.get("status") or {}


def _int(d: dict, key: str, default: int = 0) -> int:
    try:
        return int(d.get(key) if d.get(key) is not None else default)
    except (TypeError, ValueError):
        return default


def _observed(obj: dict) -> bool:
    """The controller has seen the latest spec (``metadata.generation``)."""
    return _int(_status(obj), "observedGeneration") >= _int(obj.get("metadata") or {}, "generation")


def _true(obj: dict, type_: str) -> bool:
    return (get_condition(obj, type_) or {}).get("status") == "True"


def _why(cond: dict | None) -> str:
    cond = cond or {}
    return ": ".join(x for x in (cond.get("reason"), cond.get("message")) if x) or "no reason given"


# ---- workloads ------------------------------------------------------------------------------------------------

def deployment(obj: dict) -> State:
    from bus.cli.common import CliError
    from bus.cli.rollout import status_message

    try:
        text, done = status_message(obj)
    except CliError as e:  # ProgressDeadlineExceeded
        return State(str(e), failed=True)
    return State(text, done=done)


def statefulset(obj: dict) -> State:
    """kubectl's StatefulSetStatusViewer (an ``OnDelete`` StatefulSet: its replicas ready)."""
    sp, st = _spec(obj), _status(obj)
    if not _observed(obj) or not st.get("observedGeneration"):
        return State("Waiting for statefulset spec update to be observed...")
    want = _int(sp, "replicas", 1)
    ready = _int(st, "readyReplicas")
    if ready < want:
        return State(f"Waiting for {want - ready} pods to be ready...")
    strategy = sp.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return State(f"{ready} pods ready", done=True)
    partition = (strategy.get("rollingUpdate") or {}).get("partition")
    updated = _int(st, "updatedReplicas")
    if partition is not None:
        if updated < want - int(partition):
            return State(f"Waiting for partitioned roll out to finish: {updated} out of {want - int(partition)} "
                         "new pods have been updated...")
        return State(f"partitioned roll out complete: {updated} new pods have been updated...", done=True)
    if st.get("updateRevision") != st.get("currentRevision"):
        return State(f"waiting for statefulset rolling update to complete {updated} pods at revision "
                     f"{st.get('updateRevision')}...")
    return State(f"statefulset rolling update complete {_int(st, 'currentReplicas')} pods at revision "
                 f"{st.get('currentRevision')}...", done=True)


def daemonset(obj: dict) -> State:
    """kubectl's DaemonSetStatusViewer (an ``OnDelete`` DaemonSet: its pods available)."""
    name, st = obj["metadata"]["name"], _status(obj)
    if not _observed(obj):
        return State("Waiting for daemon set spec update to be observed...")
    desired = _int(st, "desiredNumberScheduled")
    rolling = (_spec(obj).get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if rolling and _int(st, "updatedNumberScheduled") < desired:
        return State(f'Waiting for daemon set "{name}" rollout to finish: {_int(st, "updatedNumberScheduled")} out '
                     f"of {desired} new pods have been updated...")
    if _int(st, "numberAvailable") < desired:
        return State(f'Waiting for daemon set "{name}" rollout to finish: {_int(st, "numberAvailable")} of '
                     f"{desired} updated pods are available...")
    return State(f'daemon set "{name}" successfully rolled out', done=True)


def replicaset(obj: dict) -> State:
    """Its replicas (of the latest spec) are ready and available (a ReplicaSet or ReplicationController)."""
    name, st = obj["metadata"]["name"], _status(obj)
    if not _observed(obj):
        return State("Waiting for replica set spec update to be observed...")
    want = _int(_spec(obj), "replicas", 1)
    available = min(_int(st, "readyReplicas"), _int(st, "availableReplicas"))
    if available < want:
        failure = get_condition(obj, "ReplicaFailure")
        extra = f" ({_why(failure)})" if failure and failure.get("status") == "True" else ""
        return State(f'Waiting for "{name}": {available} of {want} replicas are available...{extra}')
    return State(f"{want} of {want} replicas available", done=True)


def job(obj: dict) -> State:
    """Complete; ``Failed`` (backoff limit, deadline, a failure policy) fails with its reason."""
    st = _status(obj)
    if _true(obj, "Complete"):
        return State(f"complete ({_int(st, 'succeeded')} succeeded)", done=True)
    if _true(obj, "Failed"):
        return State(f"failed: {_why(get_condition(obj, 'Failed'))}", failed=True)
    if _spec(obj).get("suspend"):
        return State("suspended")
    counts = ", ".join(f"{_int(st, k)} {k}" for k in ("active", "succeeded", "failed"))
    return State(f"running: {counts}")


def pod(obj: dict) -> State:
    """Ready (a pod that ran to completion counts too); a pod that failed fails."""
    st = _status(obj)
    phase = st.get("phase") or "Pending"
    if phase == "Succeeded":
        return State("Succeeded", done=True)
    if phase == "Failed":
        return State(f"failed: {st.get('reason') or pod_problem(obj) or 'Failed'}", failed=True)
    if _true(obj, "Ready"):
        return State("Ready", done=True)
    problem = pod_problem(obj)
    return State(f"{phase}: {problem}" if problem else f"{phase}, not ready")


def pod_problem(obj: dict) -> str | None:
    """Why a pod is not ready, from its status: unschedulable, a container waiting (not merely creating) or
    terminated with an error; None when nothing is wrong yet."""
    st = _status(obj)
    sched = get_condition(obj, "PodScheduled")
    if sched and sched.get("status") == "False":
        return _why(sched)
    for cs in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") and waiting["reason"] not in ("ContainerCreating", "PodInitializing"):
            return f"container {cs.get('name')}: {_why(waiting)}"
        term = state.get("terminated") or {}
        if term and term.get("exitCode", 0) != 0:
            return f"container {cs.get('name')}: {term.get('reason') or 'Error'} (exit code {term.get('exitCode')})"
    return None


# ---- everything else ------------------------------------------------------------------------------------------

def service(obj: dict, endpoints: dict | None) -> State:
    """A Service that selects pods (not headless, not ExternalName) waits for a ready endpoint in ``endpoints``
    (its Endpoints object, None while there is none)."""
    sp = _spec(obj)
    if sp.get("type") == "ExternalName":
        return State("ExternalName", done=True)
    if sp.get("clusterIP") == "None":
        return State("headless", done=True)
    if not sp.get("selector"):
        return State("no selector", done=True)
    subsets = (endpoints or {}).get("subsets") or []
    ready = sum(len(s.get("addresses") or []) for s in subsets)
    if ready:
        return State(f"{ready} ready endpoint{'s' if ready > 1 else ''}", done=True)
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    return State("no ready endpoint yet" + (f" ({not_ready} not ready)" if not_ready else ""))


def pvc(obj: dict) -> State:
    phase = _status(obj).get("phase") or "Pending"
    if phase == "Bound":
        return State(f"Bound to {_spec(obj).get('volumeName') or 'a volume'}", done=True)
    if phase == "Lost":
        return State("Lost: its volume is gone", failed=True)
    return State(phase)


def crd(obj: dict) -> State:
    if _true(obj, "Established"):
        return State("Established", done=True)
    names = get_condition(obj, "NamesAccepted")
    if names and names.get("status") == "False":
        return State(f"names not accepted: {_why(names)}", failed=True)
    return State("waiting to be established")


#: (API group, kind) → readiness of one object; Services are :func:`service` (they need their Endpoints)
CHECKS: dict[tuple[str, str], Callable[[dict], State]] = {
    ("apps", "Deployment"): deployment, ("apps", "StatefulSet"): statefulset, ("apps", "DaemonSet"): daemonset,
    ("apps", "ReplicaSet"): replicaset, ("", "ReplicationController"): replicaset, ("batch", "Job"): job,
    ("", "Pod"): pod, ("", "PersistentVolumeClaim"): pvc, ("apiextensions.k8s.io", "CustomResourceDefinition"): crd,
}
SERVICE = ("", "Service")
POD_OWNERS = {SERVICE, ("", "ReplicationController"), ("batch", "Job"),
              *[("apps", k) for k in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")]}


def group_of(obj: dict) -> str:
    api = obj.get("apiVersion") or ""
    return api.split("/", 1)[0] if "/" in api else ""


def state_of(obj: dict, related: dict | None = None) -> State:
    """The readiness of any object (``related``: a Service's Endpoints)."""
    key = (group_of(obj), obj.get("kind") or "")
    if key == SERVICE:
        return service(obj, related)
    check = CHECKS.get(key)
    return check(obj) if check else READY


def checked(obj: dict) -> bool:
    """Whether an object of this kind has to get ready (others are ready once applied)."""
    key = (group_of(obj), obj.get("kind") or "")
    return key == SERVICE or key in CHECKS


def needs_endpoints(obj: dict) -> bool:
    return (group_of(obj), obj.get("kind")) == SERVICE


def pod_selector(obj: dict) -> Any:
    """The :class:`bus.labels.Selector` of the pods an object runs or serves (None: not a pod owner, or none)."""
    from bus.labels import selector_from_label_selector, selector_from_map

    key, sel = (group_of(obj), obj.get("kind")), _spec(obj).get("selector")
    if not sel or key not in POD_OWNERS:
        return None
    try:
        return selector_from_map(sel) if key in (SERVICE, ("", "ReplicationController")) else \
            selector_from_label_selector(sel)
    except ValueError:
        return None
