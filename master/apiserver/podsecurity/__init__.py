"""Pod Security admission as Kubernetes' ``pod-security-admission``: the Pod Security Standards (levels
``privileged``, ``baseline``, ``restricted``; ``latest`` or ``v1.<minor>``) as pure checks over a pod's metadata and
spec as plain camelCase dicts (``baseline.py``, ``restricted.py``), one evaluator (``registry.py``), label parsing
(``api.py``) and the admission step the API server runs (``admission.py``)."""

from __future__ import annotations

from master.apiserver.podsecurity import baseline, restricted
from master.apiserver.podsecurity.api import LevelVersion
from master.apiserver.podsecurity.registry import Aggregate, Evaluator

CHECKS = baseline.CHECKS + restricted.CHECKS
EVALUATOR = Evaluator(CHECKS)


def evaluate_pod(lv: LevelVersion, metadata: dict | None, spec: dict | None) -> Aggregate:
    """What ``lv`` says of a pod (or pod template): ``allowed``, ``forbidden_detail()``."""
    return EVALUATOR.evaluate(lv, metadata or {}, spec or {})
