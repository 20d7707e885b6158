"""The exceptions the SDK raises.

Every failure of a call is a :class:`MarqueeError`. An answer from the server with an error status
is an :class:`APIStatusError` (a subclass per common status, as in the ``openai`` package) that
carries the server's own ``code``, ``message``, ``param`` and the HTTP status, so a caller can
branch on ``err.code == "rate_limit_exceeded"`` rather than parse text. A request that never got an
answer is an :class:`APIConnectionError` (or :class:`APITimeoutError`).

Bad arguments are caught before anything is sent and raised as the built-in ``ValueError`` or
``TypeError``, which are not ``MarqueeError``: they are programming errors, not service failures.

No exception's text contains the API key: messages are built from the server's error body, the
method and the path only.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = [
    "MarqueeError",
    "APIError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "APIConnectionError",
    "APITimeoutError",
    "APIResponseValidationError",
]


class MarqueeError(Exception):
    """The base of every exception the SDK raises for a failed call."""


class APIError(MarqueeError):
    """A call to Marquee failed.

    ``message`` says why; ``code`` is the server's machine-readable code (``"not_found"``,
    ``"rate_limit_exceeded"``, …) when the server answered, ``None`` otherwise.
    """

    message: str
    code: str | None
    param: str | None
    type: str | None
    body: object | None
    request: httpx.Request | None
    batch_offset: int | None
    """In a bulk upload that failed part-way: the index, in the caller's sequence, of the first
    element of the chunk that failed; everything before it was committed."""

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request | None = None,
        body: object | None = None,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request = request
        self.body = body
        self.code = code
        self.param = param
        self.type = type
        self.batch_offset = None


class APIStatusError(APIError):
    """The server answered with an error status (4xx or 5xx).

    ``status_code`` (also ``status``) is the HTTP status; ``code``, ``message``, ``param`` and
    ``type`` come from the body ``{"error": {...}}``; ``retry_after`` is the server's
    ``Retry-After`` in seconds, when it sent one; ``request_id`` its ``x-request-id``, to quote
    when reporting a problem.
    """

    status_code: int
    response: httpx.Response
    retry_after: float | None
    request_id: str | None

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        body: object | None,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            request=response.request,
            body=body,
            code=code,
            param=param,
            type=type,
        )
        self.response = response
        self.status_code = response.status_code
        self.retry_after = retry_after
        self.request_id = response.headers.get("x-request-id")

    @property
    def status(self) -> int:
        """The HTTP status (the same as ``status_code``)."""
        return self.status_code

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"{self.status_code}{code}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, code={self.code!r}, "
            f"message={self.message!r})"
        )


class BadRequestError(APIStatusError):
    """400: the request is malformed (bad JSON, an unsupported model argument)."""


class AuthenticationError(APIStatusError):
    """401: no key, an unknown key, or a revoked or expired one."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this (``missing_scope``, ``model_not_allowed``,
    ``origin_not_allowed``)."""


class NotFoundError(APIStatusError):
    """404: no such item, user, model or route."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the current state (a tenant that exists, a running
    experiment)."""


class UnprocessableEntityError(APIStatusError):
    """422: well-formed but invalid content; ``message`` (and ``param`` when set) names the
    field."""


class RateLimitError(APIStatusError):
    """429: a rate limit (``rate_limit_exceeded``), quota (``quota_exceeded``) or budget
    (``budget_exceeded``) is exhausted; ``retry_after`` says for how long."""


class InternalServerError(APIStatusError):
    """5xx: the server failed or is unavailable (503 carries ``retry_after``)."""


class APIConnectionError(APIError):
    """The request got no answer: the server is unreachable or the connection broke."""

    def __init__(
        self, message: str = "Connection error.", *, request: httpx.Request | None
    ) -> None:
        super().__init__(message, request=request)


class APITimeoutError(APIConnectionError):
    """The request timed out (see the client's ``timeout``)."""

    def __init__(self, request: httpx.Request | None) -> None:
        super().__init__("Request timed out.", request=request)


class APIResponseValidationError(APIError):
    """The server's answer was not what this SDK expects (e.g. not JSON): usually a proxy in
    between answered instead of Marquee."""

    def __init__(self, message: str, *, response: httpx.Response) -> None:
        super().__init__(message, request=response.request, body=None)
        self.response = response
        self.status_code = response.status_code


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """The wait a response asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or as an
    HTTP date. ``None`` when absent or unreadable."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    import email.utils
    import time

    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(parsed.timestamp() - time.time(), 0.0)


def error_from_response(response: httpx.Response, text: str) -> APIStatusError:
    """The exception for an error answer, from its status and its (already read) body."""
    body: object | None = None
    code: str | None = None
    param: str | None = None
    kind: str | None = None
    message = ""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        code = _str_or_none(error.get("code"))
        param = _str_or_none(error.get("param"))
        kind = _str_or_none(error.get("type"))
    elif isinstance(error, str):
        message = error
    if not message:
        message = text.strip()[:500] if text.strip() else (response.reason_phrase or "error")
    status = response.status_code
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    return cls(
        message,
        response=response,
        body=body,
        code=code,
        param=param,
        type=kind,
        retry_after=retry_after_seconds(response.headers),
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
