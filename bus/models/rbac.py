"""rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding (and their parts).

Defaults are Kubernetes' ``SetDefaults_*`` of ``pkg/apis/rbac/v1``: a binding's ``roleRef.apiGroup`` defaults to
``rbac.authorization.k8s.io``, and so does a User or Group subject's ``apiGroup`` (a ServiceAccount subject's
stays empty). Validation (field paths and messages) lives in ``bus.validation``; the authorizer in ``bus.rbac``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from bus.models.base import K8sModel, O
from bus.models.meta import LabelSelector, TopLevel

__all__ = ["PolicyRule", "AggregationRule", "RoleRef", "Subject", "Role", "ClusterRole", "RoleBinding",
           "ClusterRoleBinding"]

GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
USER_KIND, GROUP_KIND, SERVICE_ACCOUNT_KIND = "User", "Group", "ServiceAccount"


class PolicyRule(K8sModel):
    verbs: O[list[str]] = None
    api_groups: O[list[str]] = None
    resources: O[list[str]] = None
    resource_names: O[list[str]] = None
    non_resource_urls: O[list[str]] = Field(None, alias="nonResourceURLs")


class AggregationRule(K8sModel):
    cluster_role_selectors: O[list[LabelSelector]] = None


class RoleRef(K8sModel):
    api_group: O[str] = None
    kind: O[str] = None
    name: O[str] = None

    @model_validator(mode="after")
    def _default_group(self) -> "RoleRef":
        if not self.api_group:  # SetDefaults_RoleBinding / SetDefaults_ClusterRoleBinding
            self.api_group = GROUP
        return self


class Subject(K8sModel):
    kind: O[str] = None
    api_group: O[str] = None
    name: O[str] = None
    namespace: O[str] = None

    @model_validator(mode="after")
    def _default_group(self) -> "Subject":
        if not self.api_group and self.kind in (USER_KIND, GROUP_KIND):  # SetDefaults_Subject
            self.api_group = GROUP
        return self


class Role(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "Role"
    rules: O[list[PolicyRule]] = None


class ClusterRole(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "ClusterRole"
    rules: O[list[PolicyRule]] = None
    aggregation_rule: O[AggregationRule] = None


class RoleBinding(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "RoleBinding"
    subjects: O[list[Subject]] = None
    role_ref: O[RoleRef] = None


class ClusterRoleBinding(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "ClusterRoleBinding"
    subjects: O[list[Subject]] = None
    role_ref: O[RoleRef] = None
