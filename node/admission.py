"""What the agent checks before it runs a pod, whatever the pod's way here: only API servers write the node view
(``bus.roles``), so a pod reaching the agent was validated — this is the second line of defence, at the place where
a pod's fields become host paths. A pod is refused when its uid is not a UUID (every host path of its volumes is
built from it) or when its spec does not pass the API's own validation (``bus.validation``)."""

from __future__ import annotations

import uuid

from bus.resources import by_plural
from bus.validation import validate_object

PODS = by_plural("pods")


def valid_uid(uid: object) -> bool:
    """A pod uid the agent will build paths from: a UUID in its canonical form."""
    if not isinstance(uid, str):
        return False
    try:
        return str(uuid.UUID(uid)) == uid.lower() and "/" not in uid
    except ValueError:
        return False


def refusal(pod: dict) -> str | None:
    """Why the agent will not run ``pod`` (None: it will)."""
    uid = (pod.get("metadata") or {}).get("uid")
    if not valid_uid(uid):
        return f"metadata.uid {uid!r} is not a UUID"
    _, causes = validate_object(PODS, pod)
    if causes:
        return "; ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes[:5])
    return None
