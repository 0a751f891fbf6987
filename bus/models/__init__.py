"""Kubernetes-shaped object models (pydantic v2) and the helpers every component uses on them.

Field names are the Kubernetes camelCase ones (aliases; snake_case attribute names), defaults are Kubernetes v1's,
and fields k8n does not model are kept (``unknown_fields`` names them) and serialised back unchanged by ``to_dict``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from bus.models.admissionregistration import *  # noqa: F401,F403
from bus.models.admissionregistration import MutatingWebhookConfiguration, ValidatingWebhookConfiguration
from bus.models.apiextensions import *  # noqa: F401,F403
from bus.models.apiextensions import CustomResourceDefinition
from bus.models.apps import *  # noqa: F401,F403
from bus.models.apps import ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet
from bus.models.autoscaling import *  # noqa: F401,F403
from bus.models.autoscaling import HorizontalPodAutoscaler, Scale
from bus.models.authentication import *  # noqa: F401,F403
from bus.models.authentication import TokenRequest, TokenReview
from bus.models.authorization import *  # noqa: F401,F403
from bus.models.authorization import (
    LocalSubjectAccessReview, SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
)
from bus.models.base import K8sModel, k8s_alias  # noqa: F401
from bus.models.batch import *  # noqa: F401,F403
from bus.models.batch import CronJob, Job
from bus.models.coordination import *  # noqa: F401,F403
from bus.models.coordination import Lease
from bus.models.core import *  # noqa: F401,F403
from bus.models.certificates import *  # noqa: F401,F403
from bus.models.certificates import CertificateSigningRequest
from bus.models.core import (
    Binding, ConfigMap, Endpoints, Event, Eviction, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, Secret, Service, ServiceAccount,
)
from bus.models.discovery import *  # noqa: F401,F403
from bus.models.discovery import EndpointSlice
from bus.models.meta import *  # noqa: F401,F403
from bus.models.meta import Status
from bus.models.metrics import NodeMetrics, PodMetrics
from bus.models.networking import *  # noqa: F401,F403
from bus.models.quota import *  # noqa: F401,F403
from bus.models.quota import LimitRange, PriorityClass, ResourceQuota
from bus.models.networking import Ingress, IngressClass, NetworkPolicy
from bus.models.policy import *  # noqa: F401,F403
from bus.models.policy import PodDisruptionBudget
from bus.models.rbac import *  # noqa: F401,F403
from bus.models.rbac import ClusterRole, ClusterRoleBinding, Role, RoleBinding

KINDS: dict[str, type[K8sModel]] = {
    m.__name__: m
    for m in (
        Namespace, Pod, Service, Endpoints, Node, ServiceAccount, Secret, ConfigMap, PersistentVolume,
        PersistentVolumeClaim, ReplicationController, Event, Deployment, ReplicaSet, DaemonSet, Job,
        HorizontalPodAutoscaler, Lease, Scale, Binding, Status, Eviction, EndpointSlice, Role, ClusterRole,
        RoleBinding, ClusterRoleBinding, TokenRequest, TokenReview, SubjectAccessReview, LocalSubjectAccessReview,
        SelfSubjectAccessReview, SelfSubjectRulesReview, NetworkPolicy, CertificateSigningRequest,
        CustomResourceDefinition, Ingress, IngressClass,
        StatefulSet, ControllerRevision,
        CronJob,
        ResourceQuota, LimitRange, PriorityClass,
        PodDisruptionBudget,
        ValidatingWebhookConfiguration, MutatingWebhookConfiguration,
        NodeMetrics, PodMetrics,
    )
}


def model_for_kind(kind: str) -> type[K8sModel]:
    """The model class of ``kind`` (``"Pod"`` -> ``Pod``); ``KeyError`` for kinds k8n does not know."""
    return KINDS[kind]


def to_dict(model: BaseModel) -> dict[str, Any]:
    """The Kubernetes JSON shape: camelCase names, unset fields omitted, unknown fields kept as written."""
    return model.model_dump(by_alias=True, exclude_none=True)


def unknown_fields(model: BaseModel) -> list[str]:
    """Dotted paths (``spec.containers[0].foo``) of every field k8n does not model, anywhere in ``model``."""
    out: list[str] = []
    _walk(model, "", out)
    return out


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


@lru_cache(maxsize=None)
def _aliases(cls: type[BaseModel]) -> dict[str, str]:
    return {name: info.alias or name for name, info in cls.model_fields.items()}


def _walk(m: BaseModel, prefix: str, out: list[str]) -> None:
    extra = m.__pydantic_extra__
    if extra:
        out.extend(_join(prefix, k) for k in extra)
    aliases = _aliases(type(m))
    values = m.__dict__
    for name in m.__pydantic_fields_set__:  # defaults never hold unknown fields
        v = values.get(name)
        if v is None or isinstance(v, (str, int, dict)):
            continue
        path = _join(prefix, aliases[name])
        if isinstance(v, BaseModel):
            _walk(v, path, out)
        elif isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, BaseModel):
                    _walk(item, f"{path}[{i}]", out)
