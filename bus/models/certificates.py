"""certificates.k8s.io/v1: CertificateSigningRequest. k8n signs one kind of request itself: signer
``k8n.io/bus-node`` (a node's NATS user credentials, see ``master/apiserver/nodecredentials.py``); requests for other
signers are stored and wait for a signer k8n does not have. Validation lives in ``bus.validation``."""

from __future__ import annotations

from pydantic import Field

from bus.models.base import Condition, Int, K8sModel, O
from bus.models.meta import TopLevel

__all__ = ["CertificateSigningRequestSpec", "CertificateSigningRequestStatus", "CertificateSigningRequest"]

GROUP = "certificates.k8s.io"
API_VERSION = f"{GROUP}/v1"


class CertificateSigningRequestSpec(K8sModel):
    request: O[str] = None  # base64 bytes
    signer_name: O[str] = None
    expiration_seconds: O[Int] = None
    usages: O[list[str]] = None
    username: O[str] = None  # the requester's, set by the API server
    uid: O[str] = None
    groups: O[list[str]] = None
    extra: O[dict[str, list[str]]] = None


class CertificateSigningRequestStatus(K8sModel):
    conditions: O[list[Condition]] = None
    certificate: O[str] = None  # base64 bytes


class CertificateSigningRequest(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "CertificateSigningRequest"
    spec: O[CertificateSigningRequestSpec] = Field(default_factory=CertificateSigningRequestSpec)
    status: O[CertificateSigningRequestStatus] = None
