"""What the synchronous and the asynchronous client share: configuration, argument checks, the
description of each request, and the retry rules. Only sending differs between the two.

Each API call is described once, here, as a :class:`Call` (method, path, query, body and whether
it may be retried); ``Client`` and ``AsyncClient`` send it. So the two clients cannot disagree on
what a call sends, and every argument is checked before anything goes over the network.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final
from urllib.parse import quote

import httpx

from ._exceptions import APIResponseValidationError, retry_after_seconds
from ._version import __version__

log = logging.getLogger("marquee")

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT: Final = 60.0
DEFAULT_MAX_RETRIES: Final = 2
DEFAULT_BATCH_SIZE: Final = 10_000
"""The server's batch limit (``max_batch``, 10,000 unless its operator changed it)."""
DEFAULT_CHAT_MODEL: Final = "smollm2-135m-instruct"
DEFAULT_SPEECH_MODEL: Final = "hibari"
DEFAULT_VOICE: Final = "heart"
DEFAULT_TRANSCRIPTION_MODEL: Final = "whisper-tiny-en"

MAX_ID_BYTES: Final = 256
MAX_RECOMMENDATIONS: Final = 1000
MAX_PAGE: Final = 1000
MAX_HISTORY: Final = 100
MAX_EMBEDDING_INPUTS: Final = 2048
MAX_SPEECH_CHARS: Final = 4096

DEFAULT_MAX_BATCH_BYTES: Final = 8 * 1024 * 1024
"""The most bytes of JSON one bulk request carries. The server refuses bodies over its
``body_limit`` (10 MiB by default) with 413; 8 MiB leaves headroom (for a proxy in front, or a
limit set a little lower)."""
MIN_BATCH_BYTES: Final = 16

# The retry rule, the same in the Python, TypeScript and Rust SDKs (see the README's "Retries").
DEFAULT_MAX_RETRY_WAIT: Final = 60.0
"""A wait (``Retry-After``) longer than this is an exhausted quota or budget (it lasts until the
billing period ends), not a moment of overload: the error is raised at once instead."""
MAX_RETRY_AFTER: Final = DEFAULT_MAX_RETRY_WAIT
BACKOFF_BASE: Final = 0.5
BACKOFF_MAX: Final = 8.0
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
"""Answers worth sending a call again for: rate limited, or a gateway or server overloaded."""
NO_RETRY_CODES: Final = frozenset({"quota_exceeded", "budget_exceeded"})
"""Error codes never retried: exhausted until the period ends, waiting seconds will not help."""
RETRY_TRANSPORT_ERRORS: Final = (
    httpx.TimeoutException,  # connect, read, write or pool timeout
    httpx.NetworkError,  # connection refused, reset or closed
    httpx.RemoteProtocolError,  # the server hung up without an answer
)
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
RETRYABLE_POSTS: Final = frozenset(
    {
        "/v1/feedback",  # an event is keyed by (user, item, type): a batch sent twice is the same
        "/v1/items",  # upserts by id
        "/v1/users",  # upserts by id
        "/v1/recommend/session",  # a read
        "/v1/embeddings",  # read-only computations: they store nothing
        "/v1/audio/speech",
        "/v1/audio/transcriptions",
        "/v1/images/classify",
    }
)
"""The POSTs that cannot do anything twice when repeated. Every other POST (chat completions,
training, key creation or rotation, experiments, item copy generation, …) is never retried."""


class _NotGiven:
    """The default of ``patch_*`` arguments: absent, as opposed to ``None`` (which clears)."""

    _instance: _NotGiven | None = None

    def __new__(cls) -> _NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = _NotGiven()


# ---------------------------------------------------------------------------------------------
# Argument checks: wrong types are TypeError, wrong values ValueError, each naming the argument.


def _type_name(value: object) -> str:
    return type(value).__name__


def check_id(name: str, value: object) -> str:
    """An id as the server accepts it: 1–256 bytes without control characters. Integers are
    accepted (MovieLens ids are numbers) and sent as their decimal text."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{name} must be a str (or an int), not {_type_name(value)}")
    text = str(value)
    if not text:
        raise ValueError(f"{name} must not be empty")
    if len(text.encode("utf-8")) > MAX_ID_BYTES:
        raise ValueError(f"{name} is longer than {MAX_ID_BYTES} bytes")
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise ValueError(f"{name} must not contain control characters")
    return text


def check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {_type_name(value)}")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ValueError(f"{name} must be {bound} (got {value})")
    return value


def check_number(name: str, value: object, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {_type_name(value)}")
    number = float(value)
    if not math.isfinite(number) or number < lo or number > hi:
        raise ValueError(f"{name} must be between {lo:g} and {hi:g} (got {value})")
    return number


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {_type_name(value)}")
    return value


def check_str(name: str, value: object, *, max_chars: int | None = None) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {_type_name(value)}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    if max_chars is not None and len(value) > max_chars:
        raise ValueError(f"{name} is longer than {max_chars} characters")
    return value


def check_object(name: str, value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict, not {_type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"the keys of {name} must be str, not {_type_name(key)}")
    return dict(value)


def check_str_list(name: str, value: object) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of str, not {_type_name(value)}")
    out = []
    for element in value:
        if not isinstance(element, str):
            raise TypeError(f"the elements of {name} must be str, not {_type_name(element)}")
        out.append(element)
    return out


def to_time(name: str, value: object) -> str | int | float:
    """A time for the wire: a ``datetime`` becomes RFC 3339 (naive means UTC), Unix seconds and
    RFC 3339 strings pass as they are (the server checks them)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(
            f"{name} must be a datetime, Unix seconds or an RFC 3339 str, not {_type_name(value)}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds")
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return to_time("a time", value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"values of type {_type_name(value)} cannot be sent as JSON")


def encode_json(value: object) -> bytes:
    """JSON for a request body; ``datetime``s become RFC 3339. Non-finite floats are refused
    (JSON has none)."""
    try:
        return json.dumps(
            value, default=_json_default, allow_nan=False, ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
    except ValueError as e:
        raise ValueError(f"the request body cannot be sent as JSON: {e}") from None


def segment(value: str) -> str:
    """A path segment: ids may hold any character, `/` and `?` included."""
    return quote(value, safe="")


# ---------------------------------------------------------------------------------------------
# Recommend options


RECOMMEND_FILTERS: Final = (
    "category",
    "category_match",
    "exclude",
    "exclude_seen",
    "filter",
    "diversity",
    "max_per_category",
    "exploration",
)
SEARCH_FILTERS: Final = (
    "category",
    "category_match",
    "exclude",
    "filter",
    "diversity",
    "max_per_category",
)


def normalize_filters(
    func: str, filters: Mapping[str, object], allowed: tuple[str, ...], *, in_query: bool
) -> dict[str, Any]:
    """Checks the options of a recommend call; ``None`` means "not given". In a query string,
    lists are comma-separated, so a category or excluded id holding a comma cannot be sent
    there."""
    unknown = [k for k in filters if k not in allowed]
    if unknown:
        raise TypeError(
            f"{func}() got an unexpected option {unknown[0]!r}; the options are: "
            + ", ".join(allowed)
        )
    out: dict[str, Any] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if name == "category":
            if isinstance(value, str):
                categories = [c.strip() for c in value.split(",") if c.strip()]
            else:
                categories = check_str_list("category", value)
                for c in categories:
                    if not c.strip():
                        raise ValueError("category must not contain empty names")
                    if "," in c:
                        raise ValueError(
                            f"category {c!r} contains a comma, which separates categories"
                        )
            if not categories:
                raise ValueError("category must name at least one category")
            out[name] = categories
        elif name == "category_match":
            if value not in ("any", "all"):
                raise ValueError(f"category_match must be 'any' or 'all' (got {value!r})")
            out[name] = value
        elif name == "exclude":
            ids = (
                [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
            )
            if not isinstance(ids, Iterable) or isinstance(ids, bytes):
                raise TypeError(f"exclude must be a list of ids, not {_type_name(value)}")
            checked = [check_id("exclude[]", i) for i in ids]
            if in_query:
                for i in checked:
                    if "," in i:
                        raise ValueError(
                            f"exclude: id {i!r} contains a comma, which separates ids in the "
                            "query; use session() or leave it out"
                        )
            out[name] = checked
        elif name == "exclude_seen":
            out[name] = check_bool("exclude_seen", value)
        elif name == "filter":
            out[name] = check_str("filter", value)
        elif name == "diversity":
            out[name] = check_number("diversity", value, 0.0, 1.0)
        elif name == "max_per_category":
            out[name] = check_int("max_per_category", value, 1)
        elif name == "exploration":
            out[name] = check_number("exploration", value, 0.0, 0.5)
    return out


def query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def filters_query(
    func: str, n: object, filters: Mapping[str, object], allowed: tuple[str, ...]
) -> dict[str, str]:
    params = {"n": str(check_int("n", n, 1, MAX_RECOMMENDATIONS))}
    for name, value in normalize_filters(func, filters, allowed, in_query=True).items():
        params[name] = query_value(value)
    return params


# ---------------------------------------------------------------------------------------------
# Requests


@dataclass
class Call:
    """One API request, as both clients send it."""

    method: str
    path: str
    params: dict[str, str] | None = None
    body: bytes | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool = True
    """May be sent again (see :func:`may_repeat`, which also requires a POST to be one of
    :data:`RETRYABLE_POSTS`); ``False`` forbids it."""
    stream: bool = False


def may_repeat(call: Call) -> bool:
    """Whether ``call`` may be sent again after a retryable failure: only a call that cannot do
    anything twice when repeated — GET, HEAD, PUT, PATCH, DELETE and the POSTs of
    :data:`RETRYABLE_POSTS`. This holds for transport errors too: a request that failed on the
    way may still have reached the server."""
    if not call.idempotent:
        return False
    method = call.method.upper()
    if method in IDEMPOTENT_METHODS:
        return True
    return method == "POST" and call.path in RETRYABLE_POSTS


def error_code(response: httpx.Response) -> str | None:
    """The ``code`` of a Marquee error body, if the (read) response has one."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return code if isinstance(code, str) else None
    return None


def retry_wait(wait: float) -> float:
    """Waits what the server asked, never less, plus up to 10 % (at most 250 ms) of jitter, so
    that clients told the same moment do not all come back at once."""
    return wait + min(wait * 0.1, 0.25) * random.random()


def json_call(method: str, path: str, body: object, *, idempotent: bool) -> Call:
    return Call(
        method,
        path,
        body=encode_json(body),
        headers={"content-type": "application/json"},
        idempotent=idempotent,
    )


def read_file_arg(name: str, value: object) -> tuple[str, bytes]:
    """``bytes`` (or a bytes-like object), a path, or an open binary file → (file name, bytes).
    Read at once, so that a retry sends the same bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        filename = name
    elif isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        with open(path, "rb") as f:
            data = f.read()
        filename = os.path.basename(path)
    elif hasattr(value, "read"):
        data = value.read()
        if not isinstance(data, bytes):
            raise TypeError(f"{name} must be opened in binary mode ('rb')")
        filename = os.path.basename(str(getattr(value, "name", name)))
    else:
        raise TypeError(f"{name} must be bytes, a path or a binary file, not {_type_name(value)}")
    if not data:
        raise ValueError(f"{name} is empty")
    return filename, data


_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def check_month(value: object) -> str:
    if isinstance(value, (date, datetime)):
        return f"{value.year:04d}-{value.month:02d}"
    if not isinstance(value, str) or not _MONTH.match(value):
        raise ValueError(f"month must be 'YYYY-MM' or a date (got {value!r})")
    return value


# ---------------------------------------------------------------------------------------------
# The client's configuration and retry rules


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


_KEY_KIND = re.compile(r"^(mq_[a-z]{2}_)")


class BaseClient:
    """Configuration common to :class:`marquee.Client` and :class:`marquee.AsyncClient`."""

    base_url: str
    timeout: float | httpx.Timeout | None
    max_retries: int
    max_retry_wait: float
    batch_size: int
    max_batch_bytes: int
    user_id: str | None

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        user_id: str | int | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        url = base_url if base_url is not None else _env("MARQUEE_BASE_URL") or DEFAULT_BASE_URL
        if not isinstance(url, str):
            raise TypeError(f"base_url must be a str, not {_type_name(url)}")
        url = url.strip().rstrip("/")
        # An OpenAI-style base URL (`…/v1`) names the same server.
        url = url.removesuffix("/v1")
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"base_url must be an http:// or https:// URL (got {url!r})")
        self.base_url = url
        key = api_key if api_key is not None else _env("MARQUEE_API_KEY")
        if key is not None:
            if not isinstance(key, str):
                raise TypeError(f"api_key must be a str, not {_type_name(key)}")
            key = key.strip()
            # Checked without showing the key: it must never reach a message or a log.
            if not key or any(c.isspace() or unicodedata.category(c) == "Cc" for c in key):
                raise ValueError("api_key must be a non-empty key without spaces")
        self._api_key = key
        if timeout is not None and not isinstance(timeout, httpx.Timeout):
            check_number("timeout", timeout, 1e-3, float("inf"))
        self.timeout = timeout
        self.max_retries = check_int("max_retries", max_retries, 0)
        self.max_retry_wait = check_number("max_retry_wait", max_retry_wait, 0.0, float("inf"))
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.max_batch_bytes = check_int("max_batch_bytes", max_batch_bytes, MIN_BATCH_BYTES)
        if user_id is None:
            user_id = _env("MARQUEE_USER_ID")
        self.user_id = check_id("user_id", user_id) if user_id is not None else None
        self._default_headers = dict(default_headers or {})

    @property
    def api_key(self) -> str | None:
        """The key requests are sent with (never shown by ``repr``)."""
        return self._api_key

    def _key_hint(self) -> str:
        if self._api_key is None:
            return "None"
        kind = _KEY_KIND.match(self._api_key)
        return f"'{kind.group(1) if kind else ''}***'"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, api_key={self._key_hint()}, "
            f"max_retries={self.max_retries})"
        )

    def _auth_headers(self) -> dict[str, str]:
        headers = {
            "user-agent": f"marquee-python/{__version__}",
            "accept": "application/json",
            **self._default_headers,
        }
        if self._api_key is not None:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    def _build(self, http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        headers = self._auth_headers()
        headers.update(call.headers)
        return http.build_request(
            call.method,
            self.base_url + call.path,
            params=call.params,
            content=call.body,
            files=call.files,
            data=call.data,
            headers=headers,
            timeout=self.timeout,
        )

    def _response_delay(self, call: Call, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending ``call`` again after an error ``response`` (already
        read); ``None``: raise it now."""
        if attempt >= self.max_retries or response.status_code not in RETRY_STATUSES:
            return None
        if not may_repeat(call) or error_code(response) in NO_RETRY_CODES:
            return None
        wait = retry_after_seconds(response.headers)
        if wait is None:
            return backoff(attempt)
        if wait > self.max_retry_wait:
            return None
        return retry_wait(wait)

    def _error_delay(self, call: Call, error: httpx.TransportError, attempt: int) -> float | None:
        """The same after a transport error (connection refused or reset, timeout). Only calls
        that cannot do anything twice are retried, even when the connection was never made."""
        if attempt >= self.max_retries or not may_repeat(call):
            return None
        if isinstance(error, RETRY_TRANSPORT_ERRORS):
            return backoff(attempt)
        return None

    def _log_retry(self, call: Call, delay: float, why: str) -> None:
        log.info("Retrying %s %s in %.2f seconds (%s)", call.method, call.path, delay, why)


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter, without a ``Retry-After``: 0.5 s, 1 s, 2 s, … up to 8 s,
    each shortened by up to a quarter at random."""
    delay = min(BACKOFF_BASE * (2.0**attempt), BACKOFF_MAX)
    return delay * (1.0 - 0.25 * random.random())


def retry_reason(response: httpx.Response) -> str:
    code = ""
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = f" {body['error'].get('code')}"
    except ValueError:
        pass
    return f"{response.status_code}{code}"


def parse_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise APIResponseValidationError(
            f"expected JSON from {response.request.method} {response.request.url.path}, got "
            f"{response.headers.get('content-type', 'no content type')}",
            response=response,
        ) from None
