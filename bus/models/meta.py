"""meta/v1: ObjectMeta, ListMeta, LabelSelector, Status."""

from __future__ import annotations

from pydantic import Field

from bus.models.base import Bool, Dict, Int, K8sModel, O, StrMap


class OwnerReference(K8sModel):
    api_version: O[str] = None
    kind: O[str] = None
    name: O[str] = None
    uid: O[str] = None
    controller: O[Bool] = None
    block_owner_deletion: O[Bool] = None


class ObjectMeta(K8sModel):
    name: O[str] = None
    generate_name: O[str] = None
    namespace: O[str] = None
    uid: O[str] = None
    resource_version: O[str] = None
    generation: O[Int] = None
    creation_timestamp: O[str] = None  # RFC3339, e.g. "2026-11-26T19:00:00Z"
    deletion_timestamp: O[str] = None
    deletion_grace_period_seconds: O[Int] = None
    labels: O[StrMap] = None
    annotations: O[StrMap] = None
    owner_references: O[list[OwnerReference]] = None
    finalizers: O[list[str]] = None
    managed_fields: O[list[Dict]] = None


class ListMeta(K8sModel):
    resource_version: O[str] = None
    continue_: O[str] = Field(None, alias="continue")
    remaining_item_count: O[Int] = None
    self_link: O[str] = None


class LabelSelectorRequirement(K8sModel):
    key: O[str] = None
    operator: O[str] = None  # In, NotIn, Exists, DoesNotExist
    values: O[list[str]] = None


class LabelSelector(K8sModel):
    match_labels: O[StrMap] = None
    match_expressions: O[list[LabelSelectorRequirement]] = None


class StatusCause(K8sModel):
    reason: O[str] = None
    message: O[str] = None
    field: O[str] = None


class StatusDetails(K8sModel):
    name: O[str] = None
    group: O[str] = None
    kind: O[str] = None
    uid: O[str] = None
    causes: O[list[StatusCause]] = None
    retry_after_seconds: O[Int] = None


class Status(K8sModel):
    api_version: str = "v1"
    kind: str = "Status"
    metadata: O[ListMeta] = Field(default_factory=ListMeta)
    status: O[str] = None  # Success | Failure
    message: O[str] = None
    reason: O[str] = None
    details: O[StatusDetails] = None
    code: O[Int] = None


class DeleteOptions(K8sModel):
    api_version: O[str] = None
    kind: O[str] = None
    grace_period_seconds: O[Int] = None
    preconditions: O[Dict] = None
    propagation_policy: O[str] = None
    dry_run: O[list[str]] = None


class TopLevel(K8sModel):
    """Base of every kind: apiVersion, kind, metadata. Subclasses override the apiVersion/kind defaults."""

    api_version: O[str] = None
    kind: O[str] = None
    metadata: O[ObjectMeta] = Field(default_factory=ObjectMeta)
