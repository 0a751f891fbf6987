"""Kubernetes ``Status`` errors, the only error shape that crosses the bus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class Cause:
    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


class ApiError(Exception):
    """An error with a Kubernetes Status. ``status()`` is what goes on the wire."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details
        self.metadata: dict[str, Any] = {}  # the Status' ListMeta (an expired list's ``continue``)

    def status(self) -> dict[str, Any]:
        """The Status in kube-apiserver's field order, empty optional fields left out as Go's omitempty does."""
        s: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": dict(self.metadata),
                             "status": "Failure"}
        if self.message:
            s["message"] = self.message
        if self.reason:
            s["reason"] = self.reason
        details = _ordered_details(self.details)
        if details:
            s["details"] = details
        s["code"] = self.code
        return s

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> "ApiError":
        code = int(status.get("code") or 500)
        err_cls = AlreadyExists if status.get("reason") == "AlreadyExists" else _BY_CODE.get(code, ApiError)
        err = ApiError.__new__(err_cls)
        ApiError.__init__(
            err, code, str(status.get("message", "")), status.get("reason"), status.get("details")
        )
        if isinstance(status.get("metadata"), dict):
            err.metadata = dict(status["metadata"])
        return err

    @property
    def causes(self) -> list[dict[str, str]]:
        return list((self.details or {}).get("causes", []))

    def __str__(self) -> str:
        return self.message


_DETAIL_KEYS = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_KEYS = ("reason", "message", "field")


def _ordered_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """StatusDetails (and its causes) in the Go struct's field order, without empty fields."""
    if not isinstance(details, dict):
        return {}
    out = {k: details[k] for k in _DETAIL_KEYS if details.get(k) not in (None, "", [], 0)}
    if "causes" in out:
        out["causes"] = [{k: c[k] for k in _CAUSE_KEYS if c.get(k) not in (None, "")} if isinstance(c, dict) else c
                         for c in out["causes"]]
    out.update((k, v) for k, v in details.items() if k not in _DETAIL_KEYS)  # anything else stays
    return out


class BadRequest(ApiError):
    pass


class NotFound(ApiError):
    pass


class Forbidden(ApiError):
    """403: authenticated, but not allowed (RBAC, the Node authorizer, an escalation)."""


class Conflict(ApiError):
    pass


class AlreadyExists(Conflict):
    """409 with reason AlreadyExists (a Conflict, as both are 409s)."""


class Gone(ApiError):
    pass


class Invalid(ApiError):
    pass


class TooLarge(ApiError):
    pass


class Unavailable(ApiError):
    pass


class NoReply(Unavailable):
    """The API server did not answer, after the client's retries (a 503). ``timed_out``: some attempt may have
    reached a server (it timed out, or a repeat found the first attempt still running), so the request may still
    complete; when False nobody was listening and nothing was received."""

    def __init__(self, message: str, timed_out: bool) -> None:
        super().__init__(503, message, "ServiceUnavailable")
        self.timed_out = timed_out


_BY_CODE = {400: BadRequest, 403: Forbidden, 404: NotFound, 409: Conflict, 410: Gone, 413: TooLarge, 422: Invalid, 503: Unavailable}


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def bad_request(message: str) -> BadRequest:
    return BadRequest(400, message)


def not_found(resource: str, name: str, group: str = "") -> NotFound:
    q = _qualified(resource, group)
    return NotFound(404, f'{q} "{name}" not found', details={"name": name, "group": group, "kind": resource})


def already_exists(resource: str, name: str, group: str = "") -> AlreadyExists:
    q = _qualified(resource, group)
    return AlreadyExists(
        409, f'{q} "{name}" already exists', "AlreadyExists", {"name": name, "group": group, "kind": resource}
    )


def conflict(resource: str, name: str, group: str = "", why: str | None = None) -> Conflict:
    q = _qualified(resource, group)
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return Conflict(
        409, f'Operation cannot be fulfilled on {q} "{name}": {why}', "Conflict",
        {"name": name, "group": group, "kind": resource},
    )


def invalid(kind: str, name: str, causes: list[Cause], group: str = "") -> Invalid:
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    msg = f'{kind}.{group} "{name}" is invalid: ' if group else f'{kind} "{name}" is invalid: '
    msg += ", ".join(parts) if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return Invalid(
        422, msg, "Invalid",
        {"name": name, "group": group, "kind": kind, "causes": [c.to_dict() for c in causes]},
    )


def gone(message: str = "too old resource version") -> Gone:
    return Gone(410, message, "Expired")


def too_large(message: str) -> TooLarge:
    return TooLarge(413, message, "RequestEntityTooLarge")


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, message, "MethodNotAllowed")


def forbidden(resource: str, name: str, why: str, group: str = "") -> ApiError:
    q = _qualified(resource, group)
    return ApiError(403, f'{q} "{name}" is forbidden: {why}', "Forbidden", {"name": name, "group": group, "kind": resource})


def internal(message: str) -> ApiError:
    return ApiError(500, f"Internal error occurred: {message}", "InternalError")


def unavailable(message: str) -> Unavailable:
    return Unavailable(503, message, "ServiceUnavailable")


IN_PROGRESS = "RequestInProgress"  # details.causes[].reason of the answer to a repeat whose first attempt still runs


def in_progress(request_id: str, retry_after: int = 1) -> ApiError:
    """429 for a repeated request id whose first attempt has not answered yet: retry with the same id."""
    msg = f"request {request_id} is still in progress; retry it with the same requestId"
    return ApiError(429, msg, "TooManyRequests", {"retryAfterSeconds": retry_after, "causes": [
        {"reason": IN_PROGRESS, "message": msg, "field": "requestId"}]})


def is_in_progress(status: Any) -> bool:
    """True for the Status :func:`in_progress` makes."""
    if not isinstance(status, dict) or status.get("code") != 429:
        return False
    causes = (status.get("details") or {}).get("causes") if isinstance(status.get("details"), dict) else None
    return any(isinstance(c, dict) and c.get("reason") == IN_PROGRESS for c in causes or ())
