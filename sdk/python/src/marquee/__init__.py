"""Marquee's Python SDK: recommendations, catalogue and feedback, and the models Marquee serves.

The specification's flow runs as written::

    import marquee as example_sdk

    user_data = example_sdk.get_user_data()        # MARQUEE_USER_ID's interests and history
    recommendations = example_sdk.recommend(user_data['user_id'], user_data['item_id'])
    for item in recommendations:
        print(item['title'])

Module-level functions (``marquee.recommend``, ``from marquee import recommend``, …) use a
default :class:`Client` configured, as the ``openai`` package does, from the environment —
``MARQUEE_BASE_URL``, ``MARQUEE_API_KEY`` and ``MARQUEE_USER_ID`` — or from the module attributes
``marquee.base_url``, ``marquee.api_key``, ``marquee.user_id``, ``marquee.timeout`` and
``marquee.max_retries`` when set. Applications that talk to several servers or keys create
their own :class:`Client` or :class:`AsyncClient`.

**Errors** are exceptions: :class:`APIStatusError` subclasses per status
(:class:`AuthenticationError` 401, :class:`PermissionDeniedError` 403, :class:`NotFoundError` 404,
:class:`ConflictError` 409, :class:`UnprocessableEntityError` 422, :class:`RateLimitError` 429,
:class:`InternalServerError` 5xx, :class:`BadRequestError` 400) carrying the server's ``code``,
``message``, ``param`` and ``status_code``; :class:`APIConnectionError` and
:class:`APITimeoutError` when no answer came. Bad arguments raise ``ValueError`` or ``TypeError``
before anything is sent.

**Retries.** The Python, TypeScript and Rust SDKs share one retry rule:

- **Retried:** answers 429, 502, 503 and 504, and transport failures (connection refused or
  reset, timeouts), up to ``max_retries`` times after the first attempt (default 2).
- **Never retried:** an error whose code is ``quota_exceeded`` or ``budget_exceeded``, or whose
  wait (``Retry-After``) is longer than ``max_retry_wait`` (default 60 s): it is raised at once
  (an exhausted quota or budget lasts until the billing period ends).
- **Only calls that cannot do anything twice when repeated:** ``GET``, ``HEAD``, ``PUT``,
  ``PATCH`` (Marquee's patches set fields, they never add to them) and ``DELETE``; and the
  ``POST`` calls of feedback batches (an event is keyed by user, item and type), item and user
  batch upserts (by id), session recommendations, embeddings, speech, transcriptions and image
  classification (read-only computations). Chat completions, training, key creation and
  rotation, experiment creation, item copy generation and every other ``POST`` are never
  retried, not even after a connection error: the request may have reached the server.
- **Wait:** the ``retry-after-ms`` header if present, else ``Retry-After`` as delta-seconds
  (fractions allowed) or an HTTP date; never earlier than asked, plus up to 10 % (at most
  250 ms) of jitter. Without either header: exponential backoff 0.5 s, 1 s, 2 s, … capped at
  8 s, each shortened at random by up to a quarter.

The API key is sent only in the ``Authorization`` header: no ``repr``, log line or exception
message contains it.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable
from typing import Concatenate, Literal, ParamSpec, TypeVar, Unpack, overload

import httpx

from ._base import (
    DEFAULT_CHAT_MODEL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TRANSCRIPTION_MODEL,
    NOT_GIVEN,
)
from ._client import AsyncClient, Client, FileInput, Messages
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    MarqueeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from ._streaming import AsyncChatStream, ChatStream, ServerSentEvent, SSEDecoder
from ._types import (
    BulkResult,
    ChatCompletion,
    ChatOptions,
    EmbeddingsResponse,
    Erasure,
    Feedback,
    FeedbackInput,
    HistoryEntry,
    ImageClassification,
    Interest,
    Invoice,
    Item,
    ItemInput,
    ItemPage,
    Recommendation,
    RecommendFilters,
    SearchFilters,
    Transcription,
    UsageLine,
    UsageReport,
    User,
    UserExport,
    UserInput,
    UserPage,
    UserProfile,
)
from ._version import __version__

__all__ = [
    "__version__",
    "Client",
    "AsyncClient",
    "ChatStream",
    "AsyncChatStream",
    "ServerSentEvent",
    "SSEDecoder",
    "NOT_GIVEN",
    # Exceptions
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
    # Shapes
    "BulkResult",
    "ChatCompletion",
    "ChatOptions",
    "EmbeddingsResponse",
    "Erasure",
    "Feedback",
    "FeedbackInput",
    "HistoryEntry",
    "ImageClassification",
    "Interest",
    "Invoice",
    "Item",
    "ItemInput",
    "ItemPage",
    "Recommendation",
    "RecommendFilters",
    "SearchFilters",
    "Transcription",
    "UsageLine",
    "UsageReport",
    "User",
    "UserExport",
    "UserInput",
    "UserPage",
    "UserProfile",
    # The default client's settings and functions
    "base_url",
    "api_key",
    "user_id",
    "timeout",
    "max_retries",
    "default_client",
    "recommend",
    "similar",
    "popular",
    "trending",
    "session",
    "search",
    "get_user_data",
    "profile",
    "export_user",
    "delete_user",
    "get_item",
    "put_item",
    "patch_item",
    "delete_item",
    "list_items",
    "iter_items",
    "upsert_items",
    "get_user",
    "put_user",
    "patch_user",
    "list_users",
    "iter_users",
    "upsert_users",
    "insert_feedback",
    "add_feedback",
    "user_feedback",
    "embed",
    "chat",
    "speech",
    "classify_image",
    "transcribe",
    "list_models",
    "train",
    "training_status",
    "usage",
    "invoice",
]

# Settings of the default client; `None` reads the environment at each call.
base_url: str | None = None
"""The server (default: ``MARQUEE_BASE_URL``, else ``http://127.0.0.1:8080``)."""
api_key: str | None = None
"""The key (default: ``MARQUEE_API_KEY``)."""
user_id: str | int | None = None
"""The user ``get_user_data()`` reads when given none (default: ``MARQUEE_USER_ID``)."""
timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT
max_retries: int = DEFAULT_MAX_RETRIES

_lock = threading.Lock()
_default: Client | None = None
_default_settings: tuple[object, ...] | None = None


def default_client() -> Client:
    """The client the module-level functions use, (re)made when its settings or the
    environment changed, or after it was closed."""
    global _default, _default_settings
    settings = (
        base_url if base_url is not None else os.environ.get("MARQUEE_BASE_URL"),
        api_key if api_key is not None else os.environ.get("MARQUEE_API_KEY"),
        user_id if user_id is not None else os.environ.get("MARQUEE_USER_ID"),
        timeout,
        max_retries,
    )
    with _lock:
        if _default is None or settings != _default_settings or _default.is_closed:
            old = _default
            _default = Client(
                settings[0] or None,
                settings[1] or None,
                user_id=settings[2] or None,
                timeout=timeout,
                max_retries=max_retries,
            )
            _default_settings = settings
            if old is not None:
                old.close()
        return _default


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _on_default_client(method: Callable[Concatenate[Client, _P], _R]) -> Callable[_P, _R]:
    """``method`` of :class:`Client` as a module-level function on :func:`default_client`."""
    name = method.__name__

    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return getattr(default_client(), name)(*args, **kwargs)  # type: ignore[no-any-return]

    functools.update_wrapper(call, method)
    call.__qualname__ = name
    call.__module__ = __name__
    signature = inspect.signature(method)
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]
    )
    del call.__wrapped__  # type: ignore[attr-defined]
    return call


recommend = _on_default_client(Client.recommend)
similar = _on_default_client(Client.similar)
popular = _on_default_client(Client.popular)
trending = _on_default_client(Client.trending)
session = _on_default_client(Client.session)
search = _on_default_client(Client.search)
get_user_data = _on_default_client(Client.get_user_data)
profile = _on_default_client(Client.profile)
export_user = _on_default_client(Client.export_user)
delete_user = _on_default_client(Client.delete_user)
get_item = _on_default_client(Client.get_item)
put_item = _on_default_client(Client.put_item)
patch_item = _on_default_client(Client.patch_item)
delete_item = _on_default_client(Client.delete_item)
list_items = _on_default_client(Client.list_items)
iter_items = _on_default_client(Client.iter_items)
upsert_items = _on_default_client(Client.upsert_items)
get_user = _on_default_client(Client.get_user)
put_user = _on_default_client(Client.put_user)
patch_user = _on_default_client(Client.patch_user)
list_users = _on_default_client(Client.list_users)
iter_users = _on_default_client(Client.iter_users)
upsert_users = _on_default_client(Client.upsert_users)
insert_feedback = _on_default_client(Client.insert_feedback)
add_feedback = _on_default_client(Client.add_feedback)
user_feedback = _on_default_client(Client.user_feedback)
embed = _on_default_client(Client.embed)
speech = _on_default_client(Client.speech)
classify_image = _on_default_client(Client.classify_image)
list_models = _on_default_client(Client.list_models)
train = _on_default_client(Client.train)
training_status = _on_default_client(Client.training_status)
usage = _on_default_client(Client.usage)
invoice = _on_default_client(Client.invoice)


# `chat` and `transcribe` return different types by argument: spelled out so that type checkers
# keep their overloads.


@overload
def chat(
    messages: Messages,
    *,
    model: str = ...,
    stream: Literal[False] = False,
    **options: Unpack[ChatOptions],
) -> ChatCompletion: ...


@overload
def chat(
    messages: Messages,
    *,
    model: str = ...,
    stream: Literal[True],
    **options: Unpack[ChatOptions],
) -> ChatStream: ...


def chat(
    messages: Messages,
    *,
    model: str = DEFAULT_CHAT_MODEL,
    stream: bool = False,
    **options: Unpack[ChatOptions],
) -> ChatCompletion | ChatStream:
    """:meth:`Client.chat` on the default client."""
    if stream:
        return default_client().chat(messages, model=model, stream=True, **options)
    return default_client().chat(messages, model=model, stream=False, **options)


@overload
def transcribe(
    audio: FileInput,
    *,
    model: str = ...,
    response_format: Literal["json", "verbose_json"] = "json",
    prompt: str | None = None,
    temperature: float | None = None,
    language: str | None = None,
) -> Transcription: ...


@overload
def transcribe(
    audio: FileInput,
    *,
    model: str = ...,
    response_format: Literal["text", "srt", "vtt"],
    prompt: str | None = None,
    temperature: float | None = None,
    language: str | None = None,
) -> str: ...


def transcribe(
    audio: FileInput,
    *,
    model: str = DEFAULT_TRANSCRIPTION_MODEL,
    response_format: Literal["json", "verbose_json", "text", "srt", "vtt"] = "json",
    prompt: str | None = None,
    temperature: float | None = None,
    language: str | None = None,
) -> Transcription | str:
    """:meth:`Client.transcribe` on the default client."""
    client = default_client()
    if response_format in ("json", "verbose_json"):
        return client.transcribe(
            audio,
            model=model,
            response_format=response_format,
            prompt=prompt,
            temperature=temperature,
            language=language,
        )
    return client.transcribe(
        audio,
        model=model,
        response_format=response_format,
        prompt=prompt,
        temperature=temperature,
        language=language,
    )
