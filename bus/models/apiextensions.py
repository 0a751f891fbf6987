"""apiextensions.k8s.io/v1: CustomResourceDefinition. A schema (``openAPIV3Schema``) is kept as the plain JSON it
is (``bus.crdschema`` applies it); validation of the definition lives in ``bus.crd``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bus.models.base import Bool, Condition, Int, K8sModel, O
from bus.models.meta import TopLevel

__all__ = [
    "CustomResourceDefinitionNames", "CustomResourceColumnDefinition", "CustomResourceSubresourceScale",
    "CustomResourceSubresources", "CustomResourceValidation", "CustomResourceDefinitionVersion",
    "CustomResourceConversion", "CustomResourceDefinitionSpec", "CustomResourceDefinitionStatus",
    "CustomResourceDefinition",
]

GROUP = "apiextensions.k8s.io"
API_VERSION = f"{GROUP}/v1"


class CustomResourceDefinitionNames(K8sModel):
    plural: O[str] = None
    singular: O[str] = None
    short_names: O[list[str]] = None
    kind: O[str] = None
    list_kind: O[str] = None
    categories: O[list[str]] = None


class CustomResourceColumnDefinition(K8sModel):
    name: O[str] = None
    type: O[str] = None
    format: O[str] = None
    description: O[str] = None
    priority: O[Int] = None
    json_path: O[str] = None


class CustomResourceSubresourceScale(K8sModel):
    spec_replicas_path: O[str] = None
    status_replicas_path: O[str] = None
    label_selector_path: O[str] = None


class CustomResourceSubresources(K8sModel):
    status: O[dict[str, Any]] = None
    scale: O[CustomResourceSubresourceScale] = None


class CustomResourceValidation(K8sModel):
    open_apiv3_schema: O[dict[str, Any]] = Field(default=None, alias="openAPIV3Schema")


class CustomResourceDefinitionVersion(K8sModel):
    name: O[str] = None
    served: O[Bool] = None
    storage: O[Bool] = None
    deprecated: O[Bool] = None
    deprecation_warning: O[str] = None
    schema_: O[CustomResourceValidation] = Field(default=None, alias="schema")
    subresources: O[CustomResourceSubresources] = None
    additional_printer_columns: O[list[CustomResourceColumnDefinition]] = None
    selectable_fields: O[list[dict[str, Any]]] = None


class CustomResourceConversion(K8sModel):
    strategy: O[str] = "None"
    webhook: O[dict[str, Any]] = None


class CustomResourceDefinitionSpec(K8sModel):
    group: O[str] = None
    names: O[CustomResourceDefinitionNames] = None
    scope: O[str] = None
    versions: O[list[CustomResourceDefinitionVersion]] = None
    conversion: O[CustomResourceConversion] = Field(default_factory=CustomResourceConversion)
    preserve_unknown_fields: O[Bool] = None


class CustomResourceDefinitionStatus(K8sModel):
    conditions: O[list[Condition]] = None
    accepted_names: O[CustomResourceDefinitionNames] = None
    stored_versions: O[list[str]] = None


class CustomResourceDefinition(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "CustomResourceDefinition"
    spec: O[CustomResourceDefinitionSpec] = Field(default_factory=CustomResourceDefinitionSpec)
    status: O[CustomResourceDefinitionStatus] = None
