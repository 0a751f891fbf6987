"""Shared pydantic base and field types for the Kubernetes-shaped models.

Decoding rules (as the Kubernetes apiserver decodes): every field is optional at decode time (whether a field is
required is a *validation* question, see ``bus.validation``), ints and bools are strict (``replicas: "3"`` is a type
error, not 3), unknown fields are kept (``extra='allow'``) and serialised back unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, Strict

from bus.quantity import parse_quantity

# Words Kubernetes spells in capitals inside a camelCase name (hostIP, podCIDRs, providerID, systemUUID).
_UPPER = {"ip": "IP", "ips": "IPs", "cidr": "CIDR", "cidrs": "CIDRs", "id": "ID", "uuid": "UUID", "url": "URL"}


def k8s_alias(name: str) -> str:
    """``host_ip`` -> ``hostIP``, ``continue_`` -> ``continue``, ``api_version`` -> ``apiVersion``."""
    first, *rest = name.rstrip("_").split("_")
    return first + "".join(_UPPER.get(w, w[:1].upper() + w[1:]) for w in rest)


class K8sModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=k8s_alias,
        validate_by_name=True,
        validate_by_alias=True,
        extra="allow",
        protected_namespaces=(),
    )


Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Dict = dict[str, Any]
StrMap = dict[str, str]


def _int_or_string(v: Any) -> int | str:
    if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    raise ValueError("must be an integer or a string")


def _quantity(v: Any) -> int | float | str:
    """Keep what the user wrote (``"250m"``, ``1``, ``0.5``); only check it parses."""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ValueError("must be a quantity string or number")
    parse_quantity(v)
    return v


def _identity(v: Any) -> Any:
    return v


IntOrString = Annotated[Any, PlainValidator(_int_or_string), PlainSerializer(_identity)]
Quantity = Annotated[Any, PlainValidator(_quantity), PlainSerializer(_identity)]
ResourceList = dict[str, Quantity]

O = Optional  # noqa: E741 - short spelling keeps the field tables readable


class LocalObjectReference(K8sModel):
    name: O[str] = None


class ObjectReference(K8sModel):
    api_version: O[str] = None
    kind: O[str] = None
    namespace: O[str] = None
    name: O[str] = None
    uid: O[str] = None
    resource_version: O[str] = None
    field_path: O[str] = None


class Condition(K8sModel):
    """The shape shared by every ``status.conditions[]`` k8n models (union of the per-kind fields)."""

    type: O[str] = None
    status: O[str] = None
    observed_generation: O[Int] = None
    last_probe_time: O[str] = None
    last_heartbeat_time: O[str] = None
    last_update_time: O[str] = None
    last_transition_time: O[str] = None
    reason: O[str] = None
    message: O[str] = None
