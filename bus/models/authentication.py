"""authentication.k8s.io/v1: TokenRequest (the ``serviceaccounts/token`` subresource) and TokenReview.

Neither is ever stored: a TokenRequest comes back with a token in its status, a TokenReview with the verdict."""

from __future__ import annotations

from bus.models.base import Bool, Int, K8sModel, O
from bus.models.meta import TopLevel

__all__ = ["BoundObjectReference", "TokenRequestSpec", "TokenRequestStatus", "TokenRequest", "TokenReviewSpec",
           "TokenReviewUser", "TokenReviewStatus", "TokenReview"]

API_VERSION = "authentication.k8s.io/v1"


class BoundObjectReference(K8sModel):
    kind: O[str] = None  # Pod | Secret
    api_version: O[str] = None
    name: O[str] = None
    uid: O[str] = None


class TokenRequestSpec(K8sModel):
    audiences: O[list[str]] = None  # default: the API server's audiences
    expiration_seconds: O[Int] = None  # default 3600 (the API server defaults it), at least 600, at most 2^32
    bound_object_ref: O[BoundObjectReference] = None


class TokenRequestStatus(K8sModel):
    token: O[str] = None
    expiration_timestamp: O[str] = None  # RFC 3339


class TokenRequest(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "TokenRequest"
    spec: O[TokenRequestSpec] = None
    status: O[TokenRequestStatus] = None


class TokenReviewSpec(K8sModel):
    token: O[str] = None
    audiences: O[list[str]] = None  # default: the API server's audiences


class TokenReviewUser(K8sModel):
    """The ``user`` of a TokenReview's status (Kubernetes' authentication/v1 ``UserInfo``)."""

    username: O[str] = None
    uid: O[str] = None
    groups: O[list[str]] = None
    extra: O[dict[str, list[str]]] = None


class TokenReviewStatus(K8sModel):
    authenticated: O[Bool] = None
    user: O[TokenReviewUser] = None
    audiences: O[list[str]] = None
    error: O[str] = None


class TokenReview(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "TokenReview"
    spec: O[TokenReviewSpec] = None
    status: O[TokenReviewStatus] = None
