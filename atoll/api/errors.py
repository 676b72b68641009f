"""One error tree for every layer, mirroring Kubernetes ``Status`` reasons.

Storage raises these, the API server serialises them to a ``Status`` and the client
rebuilds the same class from the ``Status`` it receives, so a caller catches
``NotFound`` whether the object lived in SQLite, in etcd or behind HTTP::

    APIError (500 InternalError)
    ├── BadRequest (400 BadRequest)
    ├── Unauthorized (401 Unauthorized)
    ├── Forbidden (403 Forbidden)
    ├── NotFound (404 NotFound)
    ├── MethodNotAllowed (405 MethodNotAllowed)
    ├── NotAcceptable (406 NotAcceptable)
    ├── AlreadyExists (409 AlreadyExists)
    ├── Conflict (409 Conflict)
    ├── Gone (410 Expired)
    ├── RequestEntityTooLarge (413 RequestEntityTooLarge)
    ├── UnsupportedMediaType (415 UnsupportedMediaType)
    ├── Invalid (422 Invalid)
    ├── TooManyRequests (429 TooManyRequests)
    ├── InternalError (500 InternalError)
    ├── ServiceUnavailable (503 ServiceUnavailable)
    └── Timeout (504 Timeout)
"""

from __future__ import annotations

from typing import Any, ClassVar


class APIError(Exception):
    """A failure that has a Kubernetes ``Status`` form."""

    code: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        status: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.status = status

    @classmethod
    def for_object(
        cls, message: str, *, kind: str = "", name: str = "", group: str = "",
        causes: list[dict[str, str]] | None = None,
    ) -> APIError:
        details: dict[str, Any] = {}
        if name:
            details["name"] = name
        if group:
            details["group"] = group
        if kind:
            details["kind"] = kind
        if causes:
            details["causes"] = causes
        return cls(message, details=details)

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status

    @staticmethod
    def from_status(status: dict[str, Any], http_code: int | None = None) -> APIError:
        """Rebuild the matching subclass from a ``Status`` body (or just an HTTP code)."""
        reason = str(status.get("reason") or "")
        code = int(status.get("code") or http_code or 500)
        cls = _BY_REASON.get(reason) or _BY_CODE.get(code) or APIError
        err = cls(str(status.get("message") or reason or f"HTTP {code}"),
                  details=status.get("details") or {}, status=status)
        return err

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class BadRequest(APIError):
    code = 400
    reason = "BadRequest"


class Unauthorized(APIError):
    code = 401
    reason = "Unauthorized"


class Forbidden(APIError):
    code = 403
    reason = "Forbidden"


class NotFound(APIError):
    code = 404
    reason = "NotFound"


class MethodNotAllowed(APIError):
    code = 405
    reason = "MethodNotAllowed"


class NotAcceptable(APIError):
    code = 406
    reason = "NotAcceptable"


class AlreadyExists(APIError):
    code = 409
    reason = "AlreadyExists"


class Conflict(APIError):
    code = 409
    reason = "Conflict"


class Gone(APIError):
    """A resourceVersion that was compacted away (``410 Expired``)."""

    code = 410
    reason = "Expired"


class RequestEntityTooLarge(APIError):
    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(APIError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(APIError):
    code = 422
    reason = "Invalid"


class TooManyRequests(APIError):
    code = 429
    reason = "TooManyRequests"


class InternalError(APIError):
    code = 500
    reason = "InternalError"


class ServiceUnavailable(APIError):
    code = 503
    reason = "ServiceUnavailable"


class Timeout(APIError):
    code = 504
    reason = "Timeout"


_ALL: tuple[type[APIError], ...] = (
    BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, NotAcceptable,
    AlreadyExists, Conflict, Gone, RequestEntityTooLarge, UnsupportedMediaType, Invalid,
    TooManyRequests, InternalError, ServiceUnavailable, Timeout,
)
_BY_REASON: dict[str, type[APIError]] = {c.reason: c for c in _ALL}
_BY_REASON["Gone"] = Gone
_BY_REASON["Expired"] = Gone
_BY_CODE: dict[int, type[APIError]] = {}
for _c in _ALL:
    _BY_CODE.setdefault(_c.code, _c)


def field_error(field: str, message: str, *, reason: str = "FieldValueInvalid") -> dict[str, str]:
    """One ``details.causes`` entry, the way kube-apiserver reports a field problem."""
    return {"reason": reason, "message": message, "field": field}


def invalid(kind: str, name: str, causes: list[dict[str, str]], *, group: str = "") -> Invalid:
    """The 422 kube-apiserver answers for a failed validation, message and causes included.

    kube writes ``Deployment.apps "web" is invalid: <cause>`` for one cause and
    ``... is invalid: [<cause>, <cause>]`` for several, duplicates removed.
    """
    texts: list[str] = []
    for c in causes:
        text = f"{c['field']}: {c['message']}" if c.get("field") else c["message"]
        if text not in texts:
            texts.append(text)
    qualified = f"{kind}.{group}" if group else kind
    if not texts:
        msg = f'{qualified} "{name}" is invalid'
    elif len(texts) == 1:
        msg = f'{qualified} "{name}" is invalid: {texts[0]}'
    else:
        msg = f'{qualified} "{name}" is invalid: [{", ".join(texts)}]'
    err = Invalid.for_object(msg, kind=kind, name=name, group=group, causes=causes)
    assert isinstance(err, Invalid)
    return err
