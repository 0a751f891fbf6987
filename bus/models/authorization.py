"""authorization.k8s.io/v1: SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview and
SelfSubjectRulesReview — questions to the authorizer, answered in ``status`` and never stored."""

from __future__ import annotations

from bus.models.base import Bool, K8sModel, O
from bus.models.meta import TopLevel

__all__ = ["ResourceAttributes", "NonResourceAttributes", "SubjectAccessReviewSpec", "SelfSubjectAccessReviewSpec",
           "SubjectAccessReviewStatus", "SubjectAccessReview", "LocalSubjectAccessReview",
           "SelfSubjectAccessReview", "SelfSubjectRulesReviewSpec", "SubjectRulesReviewStatus",
           "SelfSubjectRulesReview"]

API_VERSION = "authorization.k8s.io/v1"


class ResourceAttributes(K8sModel):
    namespace: O[str] = None
    verb: O[str] = None
    group: O[str] = None
    version: O[str] = None
    resource: O[str] = None
    subresource: O[str] = None
    name: O[str] = None


class NonResourceAttributes(K8sModel):
    path: O[str] = None
    verb: O[str] = None


class SubjectAccessReviewSpec(K8sModel):
    resource_attributes: O[ResourceAttributes] = None
    non_resource_attributes: O[NonResourceAttributes] = None
    user: O[str] = None
    groups: O[list[str]] = None
    extra: O[dict[str, list[str]]] = None
    uid: O[str] = None


class SelfSubjectAccessReviewSpec(K8sModel):
    resource_attributes: O[ResourceAttributes] = None
    non_resource_attributes: O[NonResourceAttributes] = None


class SubjectAccessReviewStatus(K8sModel):
    allowed: O[Bool] = None
    denied: O[Bool] = None
    reason: O[str] = None
    evaluation_error: O[str] = None


class SubjectAccessReview(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "SubjectAccessReview"
    spec: O[SubjectAccessReviewSpec] = None
    status: O[SubjectAccessReviewStatus] = None


class LocalSubjectAccessReview(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "LocalSubjectAccessReview"
    spec: O[SubjectAccessReviewSpec] = None
    status: O[SubjectAccessReviewStatus] = None


class SelfSubjectAccessReview(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "SelfSubjectAccessReview"
    spec: O[SelfSubjectAccessReviewSpec] = None
    status: O[SubjectAccessReviewStatus] = None


class SelfSubjectRulesReviewSpec(K8sModel):
    namespace: O[str] = None


class SubjectRulesReviewStatus(K8sModel):
    resource_rules: O[list[dict]] = None
    non_resource_rules: O[list[dict]] = None
    incomplete: O[Bool] = None
    evaluation_error: O[str] = None


class SelfSubjectRulesReview(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "SelfSubjectRulesReview"
    spec: O[SelfSubjectRulesReviewSpec] = None
    status: O[SubjectRulesReviewStatus] = None
