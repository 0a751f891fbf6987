"""The Priority admission plugin (``plugin/pkg/admission/priority``) and the built-in PriorityClasses.

- A new pod's ``spec.priorityClassName`` is resolved to ``spec.priority`` (and the class's ``preemptionPolicy``);
  a pod naming no class gets the global default class's value (and name), else 0. An unknown class is a 403
  (``no PriorityClass with name X was found``), and so is a pod stating a priority other than its class's.
- A pod update that leaves ``priority``/``preemptionPolicy`` out keeps the stored ones.
- A PriorityClass may be ``globalDefault`` only while no other one is.
- ``system-cluster-critical`` and ``system-node-critical`` exist from the first start (``ensure_system_classes``)
  and cannot be deleted.
"""

from __future__ import annotations

import contextlib

from bus import errors
from bus.models import to_dict
from bus.models.quota import PREEMPT_LOWER
from bus.resources import by_plural
from bus.store import NatsStore
from bus.validation import validate_object
from master.apiserver import strategy
from master.apiserver.listers import CachedLister

PLURAL = "priorityclasses"
GROUP = "scheduling.k8s.io"
DEFAULT_PRIORITY = 0  # DefaultPriorityWhenNoDefaultClassExists
SYSTEM_CLASSES = {  # name -> (value, description), as scheduling/v1's SystemPriorityClasses()
    "system-node-critical": (2000001000, "Used for system critical pods that must not be moved from their "
                                         "current node."),
    "system-cluster-critical": (2000000000, "Used for system critical pods that must run in the cluster, but can "
                                            "be moved to another node if necessary."),
}


def default_class(classes: list[dict]) -> dict | None:
    """The global default class; after a race made two, the one with the lowest value (as Kubernetes picks)."""
    found = [c for c in classes if c.get("globalDefault")]
    return min(found, key=lambda c: int(c.get("value") or 0)) if found else None


def _forbidden(name: str, why: str) -> errors.ApiError:
    return errors.forbidden("pods", name, why)


def resolve(pod: dict, cls: dict | None, class_name: str, default: dict | None) -> None:
    """Set the pod's priority (and preemption policy) from its class ``cls`` (looked up by ``class_name``; None:
    not found) or, naming none, from ``default``; raise the plugin's 403s."""
    spec = pod.setdefault("spec", {})
    name = (pod.get("metadata") or {}).get("name") or ""
    if class_name:
        if cls is None:
            raise _forbidden(name, f"no PriorityClass with name {class_name} was found")
        priority, policy = int(cls.get("value") or 0), cls.get("preemptionPolicy")
    elif default is not None:
        spec["priorityClassName"] = default["metadata"]["name"]
        priority, policy = int(default.get("value") or 0), default.get("preemptionPolicy")
    else:
        priority, policy = DEFAULT_PRIORITY, None
    given = spec.get("priority")
    if given is not None and given != priority:
        raise _forbidden(name, f"the integer value of priority ({given}) must not be provided in pod spec; priority "
                               f"admission controller computed {priority} from the given PriorityClass name")
    spec["priority"] = priority
    if policy is not None:
        given_policy = spec.get("preemptionPolicy")
        if given_policy is not None and given_policy != policy:
            raise _forbidden(name, f"the string value of PreemptionPolicy ({given_policy}) must not be provided in "
                                   f"pod spec; priority admission controller computed {policy} from the given "
                                   "PriorityClass name")
        spec["preemptionPolicy"] = policy
    else:
        spec.setdefault("preemptionPolicy", PREEMPT_LOWER)


def keep_on_update(old: dict, new: dict) -> None:
    """A pod update without ``priority``/``preemptionPolicy`` keeps the stored ones (validation refuses changes)."""
    old_spec, new_spec = old.get("spec") or {}, new.get("spec")
    if not isinstance(new_spec, dict):
        return
    for field in ("priority", "preemptionPolicy"):
        if new_spec.get(field) is None and old_spec.get(field) is not None:
            new_spec[field] = old_spec[field]


class PriorityAdmission:
    def __init__(self, store: NatsStore) -> None:
        self.classes = CachedLister(store, PLURAL)

    async def start(self) -> None:
        await self.classes.start()

    async def stop(self) -> None:
        await self.classes.stop()

    async def admit_pod(self, pod: dict) -> None:
        class_name = (pod.get("spec") or {}).get("priorityClassName") or ""
        cls = await self.classes.get(class_name) if class_name else None
        resolve(pod, cls, class_name, None if class_name else default_class(self.classes.cached()))

    def admit_class(self, pc: dict, old: dict | None) -> None:
        """Only one global default."""
        if not pc.get("globalDefault"):
            return
        current = default_class(self.classes.cached())
        name = pc["metadata"].get("name") or ""
        if current is not None and (old is None or current["metadata"]["name"] != name):
            raise errors.forbidden(PLURAL, name, f"PriorityClass {current['metadata']['name']} is already marked as "
                                                 "default. Only one default can exist", GROUP)


def refuse_system_delete(name: str) -> None:
    if name in SYSTEM_CLASSES:
        raise errors.forbidden(PLURAL, name, "this is a system priority class and cannot be deleted", GROUP)


def system_class(name: str) -> dict:
    value, description = SYSTEM_CLASSES[name]
    body = {"apiVersion": f"{GROUP}/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value,
            "description": description}
    model, causes = validate_object(by_plural(PLURAL), body)
    assert not causes, causes
    return to_dict(model)


async def ensure_system_classes(store: NatsStore) -> None:
    """Create the built-in PriorityClasses that are missing (a KV create: existing ones, or another API server's
    made meanwhile, are left as they are)."""
    res = by_plural(PLURAL)
    for name in SYSTEM_CLASSES:
        obj = system_class(name)
        strategy.prepare_create(res, obj, None)
        with contextlib.suppress(errors.AlreadyExists):
            await store.create(res, None, name, obj)
