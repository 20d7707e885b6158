"""``Client`` and ``AsyncClient``: every call of the API, over httpx.

Both send the requests that :mod:`marquee._calls` describes and share :class:`BaseClient`'s
configuration and retry rules; they differ only in blocking or awaiting.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import date
from os import PathLike
from types import TracebackType
from typing import IO, Any, Literal, Self, Unpack, cast, overload

import httpx

from . import _calls
from ._base import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHAT_MODEL,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_SPEECH_MODEL,
    DEFAULT_TIMEOUT,
    DEFAULT_TRANSCRIPTION_MODEL,
    DEFAULT_VOICE,
    MIN_BATCH_BYTES,
    NOT_GIVEN,
    BaseClient,
    Call,
    _NotGiven,
    check_int,
    check_number,
    encode_json,
    parse_json,
    retry_reason,
)
from ._exceptions import APIConnectionError, APIError, APITimeoutError, error_from_response
from ._streaming import AsyncChatStream, ChatStream
from ._types import (
    BulkResult,
    ChatCompletion,
    ChatOptions,
    EmbeddingsResponse,
    Erasure,
    Feedback,
    FeedbackInput,
    ImageClassification,
    Invoice,
    Item,
    ItemInput,
    ItemPage,
    JSONObject,
    Recommendation,
    RecommendFilters,
    SearchFilters,
    TimeInput,
    Transcription,
    UsageReport,
    User,
    UserExport,
    UserInput,
    UserPage,
    UserProfile,
)

__all__ = ["Client", "AsyncClient"]

Id = str | int
FileInput = bytes | str | PathLike[str] | IO[bytes]
Messages = str | Sequence[Mapping[str, Any]]
TranscriptFormat = Literal["json", "verbose_json", "text", "srt", "vtt"]


def _user_for_data(client: BaseClient, user_id: Id | None) -> Id:
    if user_id is not None:
        return user_id
    if client.user_id is None:
        raise ValueError(
            "get_user_data() needs a user id: pass one, or set MARQUEE_USER_ID "
            "(or Client(user_id=...))"
        )
    return client.user_id


def _bulk_elements(
    what: str,
    elements: object,
    prepare: Callable[[int, object], dict[str, Any]],
    max_bytes: int,
) -> Iterator[bytes]:
    """The checked elements of a bulk upload, each encoded as JSON. A list is checked whole
    before the first request, so a bad element (or one too large to send) sends nothing; an
    iterator (a generator over a large file) is checked as it is read."""
    if isinstance(elements, (str, bytes, Mapping)) or not isinstance(elements, Iterable):
        raise TypeError(f"{what} must be a list (or an iterable) of dicts")

    def encode(index: int, element: object) -> bytes:
        return _encode_element(what, index, prepare(index, element), max_bytes)

    if isinstance(elements, Sequence):
        return iter([encode(i, e) for i, e in enumerate(elements)])
    return (encode(i, e) for i, e in enumerate(elements))


def _encode_element(what: str, index: int, element: dict[str, Any], max_bytes: int) -> bytes:
    """One element as it is sent; refused when even a request of it alone would be too large."""
    data = encode_json(element)
    if len(data) + 2 > max_bytes:
        raise ValueError(
            f"{what}[{index}] is {len(data)} bytes of JSON: alone, it is over the {max_bytes} "
            "bytes a bulk request may carry (max_batch_bytes; the server refuses bodies over "
            "its limit, 10 MiB by default)"
        )
    return data


class _Batcher:
    """Cuts encoded elements into request bodies (JSON arrays) of at most ``size`` elements and
    ``max_bytes`` bytes: a chunk is cut before the element that would take it over either."""

    def __init__(self, size: int, max_bytes: int) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.parts: list[bytes] = []
        self.used = 0  # the elements and the commas between them

    def push(self, part: bytes) -> tuple[bytes, int] | None:
        """Adds an element; returns the body to send first when it does not fit."""
        full = None
        if self.parts and (
            len(self.parts) >= self.size or self.used + 1 + len(part) + 2 > self.max_bytes
        ):
            full = self.take()
        self.used += len(part) + (1 if self.parts else 0)
        self.parts.append(part)
        return full

    def take(self) -> tuple[bytes, int] | None:
        """The body of what was pushed since the last body (``None`` when nothing was), and
        how many elements it holds."""
        if not self.parts:
            return None
        body = b"[" + b",".join(self.parts) + b"]"
        count = len(self.parts)
        self.parts = []
        self.used = 0
        return body, count


def _bodies(elements: Iterator[bytes], size: int, max_bytes: int) -> Iterator[tuple[bytes, int]]:
    batcher = _Batcher(size, max_bytes)
    for part in elements:
        full = batcher.push(part)
        if full is not None:
            yield full
    last = batcher.take()
    if last is not None:
        yield last


def _batch_size(client: BaseClient, batch_size: int | None) -> int:
    return client.batch_size if batch_size is None else check_int("batch_size", batch_size, 1)


class Client(BaseClient):
    """A blocking client of one Marquee server::

        client = marquee.Client("http://127.0.0.1:8080", "mq_sk_…")
        for item in client.recommend("ann", n=5, category="Crime"):
            print(item["title"], item["reason"]["message"])

    ``base_url`` and ``api_key`` default to ``MARQUEE_BASE_URL`` and ``MARQUEE_API_KEY``
    (without a key, only a server's public demo routes answer). ``timeout`` is in seconds (or an
    ``httpx.Timeout``); ``max_retries`` is how many times a call is sent again after a 429, 502,
    503 or 504 answer or a transport failure, waiting as ``Retry-After`` says or backing off
    exponentially, and ``max_retry_wait`` the longest ``Retry-After`` worth waiting for (see
    :mod:`marquee` for the whole rule); ``batch_size`` is the most elements per request of bulk
    uploads (the server's limit, 10,000) and ``max_batch_bytes`` the most bytes of JSON per
    request (8 MiB; the server refuses bodies over 10 MiB); ``user_id`` (``MARQUEE_USER_ID``) is the
    user :meth:`get_user_data` reads when given none. Pass ``http_client`` to use your own
    ``httpx.Client`` (proxies, certificates, event hooks); it is then yours to close.

    Use it as a context manager, or call :meth:`close`, to release its connections.
    """

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
        user_id: Id | None = None,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            batch_size=batch_size,
            max_batch_bytes=max_batch_bytes,
            user_id=user_id,
            default_headers=default_headers,
        )
        if http_client is not None and not isinstance(http_client, httpx.Client):
            raise TypeError("http_client must be an httpx.Client")
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()

    def close(self) -> None:
        """Releases the connections (unless the ``httpx.Client`` was passed in)."""
        if self._owns_http:
            self._http.close()

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def with_options(
        self,
        *,
        timeout: float | httpx.Timeout | None | _NotGiven = NOT_GIVEN,
        max_retries: int | _NotGiven = NOT_GIVEN,
        max_retry_wait: float | _NotGiven = NOT_GIVEN,
        batch_size: int | _NotGiven = NOT_GIVEN,
        max_batch_bytes: int | _NotGiven = NOT_GIVEN,
    ) -> Self:
        """A copy with other settings, sharing this client's connections:
        ``client.with_options(max_retries=0).popular()``."""
        other = copy.copy(self)
        other._owns_http = False
        if not isinstance(timeout, _NotGiven):
            other.timeout = timeout
        if not isinstance(max_retries, _NotGiven):
            other.max_retries = check_int("max_retries", max_retries, 0)
        if not isinstance(max_retry_wait, _NotGiven):
            other.max_retry_wait = check_number("max_retry_wait", max_retry_wait, 0.0, float("inf"))
        if not isinstance(batch_size, _NotGiven):
            other.batch_size = check_int("batch_size", batch_size, 1)
        if not isinstance(max_batch_bytes, _NotGiven):
            other.max_batch_bytes = check_int("max_batch_bytes", max_batch_bytes, MIN_BATCH_BYTES)
        return other

    # -----------------------------------------------------------------------------------------
    # Sending

    def _send(self, call: Call) -> httpx.Response:
        request = self._build(self._http, call)
        attempt = 0
        while True:
            try:
                response = self._http.send(request, stream=call.stream)
            except httpx.TransportError as e:
                delay = self._error_delay(call, e, attempt)
                if delay is None:
                    if isinstance(e, httpx.TimeoutException):
                        raise APITimeoutError(request) from e
                    raise APIConnectionError(
                        f"cannot reach {self.base_url}: {e}", request=request
                    ) from e
                self._log_retry(call, delay, type(e).__name__)
                time.sleep(delay)
                attempt += 1
                continue
            if response.is_success:
                return response
            try:
                response.read()
            finally:
                response.close()
            delay = self._response_delay(call, response, attempt)
            if delay is None:
                raise error_from_response(response, response.text)
            self._log_retry(call, delay, retry_reason(response))
            time.sleep(delay)
            attempt += 1

    def _json(self, call: Call) -> Any:
        return parse_json(self._send(call))

    def _bulk(
        self,
        path: str,
        what: str,
        elements: object,
        prepare: Callable[[int, object], dict[str, Any]],
        count_key: str,
        batch_size: int | None,
    ) -> BulkResult:
        size = _batch_size(self, batch_size)
        max_bytes = self.max_batch_bytes
        count = batches = offset = 0
        for body, n in _bodies(_bulk_elements(what, elements, prepare, max_bytes), size, max_bytes):
            try:
                answer = self._json(_calls.batch_body(path, body))
            except APIError as e:
                e.batch_offset = offset
                raise
            count += int(answer.get(count_key, 0))
            batches += 1
            offset += n
        return {"count": count, "batches": batches}

    # -----------------------------------------------------------------------------------------
    # Recommendations

    def recommend(
        self,
        user_id: Id,
        item_id: Id | None = None,
        n: int = 10,
        **filters: Unpack[RecommendFilters],
    ) -> list[Recommendation]:
        """Recommendations for ``user_id``, best first; with ``item_id``, what to watch after
        that item (``GET /v1/recommend/{user}/{item}``). Each is a dict with ``item_id``,
        ``title``, ``score``, ``reason`` (``kind``, ``message``), ``categories`` and
        ``recommendation_id``. ``filters``: ``category`` (a name or a list), ``category_match``
        (``"any"``/``"all"``), ``exclude`` (ids), ``exclude_seen``, ``filter`` (an expression
        such as ``'year >= 1990'``), ``diversity`` (0–1), ``max_per_category``, ``exploration``
        (0–0.5). An unknown user gets popular items."""
        return cast(
            list[Recommendation], self._json(_calls.recommend(user_id, item_id, n, filters))
        )

    def similar(
        self, item_id: Id, n: int = 10, **filters: Unpack[RecommendFilters]
    ) -> list[Recommendation]:
        """Items similar to ``item_id``."""
        return cast(list[Recommendation], self._json(_calls.similar(item_id, n, filters)))

    def popular(self, n: int = 10, **filters: Unpack[RecommendFilters]) -> list[Recommendation]:
        """The most popular items (time-decayed)."""
        return cast(list[Recommendation], self._json(_calls.popular(n, filters)))

    def trending(self, n: int = 10, **filters: Unpack[RecommendFilters]) -> list[Recommendation]:
        """Items gaining popularity: the last week against the four before."""
        return cast(list[Recommendation], self._json(_calls.trending(n, filters)))

    def session(
        self, items: Sequence[Id], n: int = 10, **filters: Unpack[RecommendFilters]
    ) -> list[Recommendation]:
        """Recommendations for an anonymous session that engaged with ``items``."""
        return cast(list[Recommendation], self._json(_calls.session(items, n, filters)))

    def search(self, q: str, n: int = 10, **filters: Unpack[SearchFilters]) -> list[Recommendation]:
        """Items whose text matches ``q`` in meaning (needs an embedding model on the server)."""
        return cast(list[Recommendation], self._json(_calls.search(q, n, filters)))

    # -----------------------------------------------------------------------------------------
    # Users' data

    def get_user_data(self, user_id: Id | None = None, *, history: int = 20) -> UserProfile:
        """What a user is into: ``user_id``, ``item_id`` (the item they engaged with most
        recently), ``interests`` (weighted categories and tags), ``history`` (recent feedback
        with titles, newest first) and ``attributes``. Without ``user_id``, the client's
        ``user_id`` (``MARQUEE_USER_ID``)."""
        return self.profile(_user_for_data(self, user_id), history=history)

    def profile(self, user_id: Id, *, history: int = 20) -> UserProfile:
        """``GET /v1/users/{id}/profile`` (what :meth:`get_user_data` returns); ``history``:
        entries of recent history, 0–100."""
        return cast(UserProfile, self._json(_calls.profile(user_id, history)))

    def export_user(self, user_id: Id) -> UserExport:
        """Everything held about a user: attributes and feedback (recorded in the audit log)."""
        return cast(UserExport, self._json(_calls.export_user(user_id)))

    def delete_user(self, user_id: Id) -> Erasure:
        """Erases a user: attributes, feedback, their place in served results, and (by a retrain
        it starts) their influence on the model."""
        return cast(Erasure, self._json(_calls.delete_user(user_id)))

    # -----------------------------------------------------------------------------------------
    # Catalogue

    def get_item(self, item_id: Id) -> Item:
        return cast(Item, self._json(_calls.get_item(item_id)))

    def put_item(
        self,
        item_id: Id,
        *,
        title: str | None = None,
        categories: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        description: str | None = None,
        metadata: JSONObject | None = None,
        published_at: TimeInput | None = None,
        available_from: TimeInput | None = None,
        available_until: TimeInput | None = None,
        hidden: bool | None = None,
    ) -> Item:
        """Creates or replaces an item (fields left out are empty); returns it as stored."""
        fields = dict(
            title=title,
            categories=categories,
            tags=tags,
            description=description,
            metadata=metadata,
            published_at=published_at,
            available_from=available_from,
            available_until=available_until,
            hidden=hidden,
        )
        return cast(Item, self._json(_calls.put_item(item_id, fields)))

    def patch_item(
        self,
        item_id: Id,
        *,
        title: str | None | _NotGiven = NOT_GIVEN,
        categories: Sequence[str] | _NotGiven = NOT_GIVEN,
        tags: Sequence[str] | _NotGiven = NOT_GIVEN,
        description: str | None | _NotGiven = NOT_GIVEN,
        metadata: JSONObject | _NotGiven = NOT_GIVEN,
        published_at: TimeInput | None | _NotGiven = NOT_GIVEN,
        available_from: TimeInput | None | _NotGiven = NOT_GIVEN,
        available_until: TimeInput | None | _NotGiven = NOT_GIVEN,
        hidden: bool | _NotGiven = NOT_GIVEN,
    ) -> Item:
        """Changes the fields given (``None`` clears an optional one); returns the item."""
        fields = dict(
            title=title,
            categories=categories,
            tags=tags,
            description=description,
            metadata=metadata,
            published_at=published_at,
            available_from=available_from,
            available_until=available_until,
            hidden=hidden,
        )
        return cast(Item, self._json(_calls.patch_item(item_id, fields)))

    def delete_item(self, item_id: Id) -> None:
        """Deletes an item; it is never served again once this returns."""
        self._send(_calls.delete_item(item_id))

    def list_items(self, *, limit: int = 100, cursor: str | None = None) -> ItemPage:
        """One page of the catalogue (``items``, ``next_cursor``); see :meth:`iter_items`."""
        return cast(ItemPage, self._json(_calls.list_items(limit, cursor)))

    def iter_items(self, *, page_size: int = 100) -> Iterator[Item]:
        """Every item, following the pages' cursors."""
        _calls.list_items(page_size, None)

        def pages() -> Iterator[Item]:
            cursor: str | None = None
            while True:
                page = self.list_items(limit=page_size, cursor=cursor)
                yield from page["items"]
                cursor = page["next_cursor"]
                if not cursor:
                    return

        return pages()

    def upsert_items(
        self, items: Iterable[ItemInput], *, batch_size: int | None = None
    ) -> BulkResult:
        """Creates or replaces many items, ``batch_size`` (default: the client's) per request.
        Returns ``{"count": upserted, "batches": requests}``. A failed chunk raises with
        ``batch_offset`` set: the chunks before it were committed."""
        return self._bulk("/v1/items", "items", items, _calls.item_element, "upserted", batch_size)

    # -----------------------------------------------------------------------------------------
    # Users and feedback

    def get_user(self, user_id: Id) -> User:
        return cast(User, self._json(_calls.get_user(user_id)))

    def put_user(self, user_id: Id, attributes: JSONObject | None = None) -> User:
        """Creates or replaces a user's attributes (encrypted at rest on the server)."""
        return cast(User, self._json(_calls.put_user(user_id, attributes)))

    def patch_user(self, user_id: Id, attributes: JSONObject) -> User:
        """Changes the attributes given."""
        return cast(User, self._json(_calls.patch_user(user_id, attributes)))

    def list_users(self, *, limit: int = 100, cursor: str | None = None) -> UserPage:
        return cast(UserPage, self._json(_calls.list_users(limit, cursor)))

    def iter_users(self, *, page_size: int = 100) -> Iterator[User]:
        """Every user, following the pages' cursors."""
        _calls.list_users(page_size, None)

        def pages() -> Iterator[User]:
            cursor: str | None = None
            while True:
                page = self.list_users(limit=page_size, cursor=cursor)
                yield from page["users"]
                cursor = page["next_cursor"]
                if not cursor:
                    return

        return pages()

    def upsert_users(
        self, users: Iterable[UserInput], *, batch_size: int | None = None
    ) -> BulkResult:
        """Creates or replaces many users (``{"id", "attributes"}``), in chunks."""
        return self._bulk("/v1/users", "users", users, _calls.user_element, "upserted", batch_size)

    def insert_feedback(
        self, events: Iterable[FeedbackInput], *, batch_size: int | None = None
    ) -> BulkResult:
        """Records many feedback events (``user_id``, ``item_id``, ``type``, optional
        ``value``, ``timestamp``, ``recommendation_id``), in chunks. Returns
        ``{"count": accepted, "batches": requests}``."""
        return self._bulk(
            "/v1/feedback", "events", events, _calls.feedback_element, "accepted", batch_size
        )

    def add_feedback(
        self,
        user_id: Id,
        item_id: Id,
        type: str = "view",
        *,
        value: float | None = None,
        timestamp: TimeInput | None = None,
        recommendation_id: str | None = None,
    ) -> int:
        """Records one event; returns how many the server accepted (1). The user's next
        recommendations reflect it at once."""
        call = _calls.one_feedback(user_id, item_id, type, value, timestamp, recommendation_id)
        return int(self._json(call).get("accepted", 0))

    def user_feedback(self, user_id: Id, *, limit: int = 100) -> list[Feedback]:
        """A user's most recent feedback events."""
        return cast(list[Feedback], self._json(_calls.user_feedback(user_id, limit))["feedback"])

    # -----------------------------------------------------------------------------------------
    # Models

    def embed(
        self, input: str | Sequence[str], *, model: str | None = None, dimensions: int | None = None
    ) -> EmbeddingsResponse:
        """Embeddings of a text or a list of texts (``/v1/embeddings``):
        ``[d["embedding"] for d in client.embed(texts)["data"]]``. ``model``: the server's
        first embedding model when not given."""
        return cast(EmbeddingsResponse, self._json(_calls.embed(input, model, dimensions)))

    @overload
    def chat(
        self,
        messages: Messages,
        *,
        model: str = ...,
        stream: Literal[False] = False,
        **options: Unpack[ChatOptions],
    ) -> ChatCompletion: ...

    @overload
    def chat(
        self,
        messages: Messages,
        *,
        model: str = ...,
        stream: Literal[True],
        **options: Unpack[ChatOptions],
    ) -> ChatStream: ...

    def chat(
        self,
        messages: Messages,
        *,
        model: str = DEFAULT_CHAT_MODEL,
        stream: bool = False,
        **options: Unpack[ChatOptions],
    ) -> ChatCompletion | ChatStream:
        """A chat completion (``/v1/chat/completions``). ``messages`` is a list of
        ``{"role", "content"}`` dicts, or a str for one user message. Returns the completion
        (``completion["choices"][0]["message"]["content"]``), or with ``stream=True`` a
        :class:`ChatStream` that yields the text as it is generated. Options: ``max_tokens``,
        ``temperature``, ``top_p``, ``seed``, ``stop``, ``frequency_penalty``,
        ``presence_penalty``, ``include_usage``."""
        response = self._send(_calls.chat(messages, model, stream, options))
        if stream:
            return ChatStream(response.iter_bytes(), close=response.close, request=response.request)
        return cast(ChatCompletion, parse_json(response))

    def speech(
        self,
        input: str,
        *,
        model: str = DEFAULT_SPEECH_MODEL,
        voice: str = DEFAULT_VOICE,
        speed: float | None = None,
        response_format: Literal["wav", "pcm"] = "wav",
    ) -> bytes:
        """Speaks ``input`` (``/v1/audio/speech``): the bytes of a WAV file (or raw 16-bit PCM
        at 24 kHz)."""
        return self._send(_calls.speech(input, model, voice, speed, response_format)).content

    def classify_image(
        self,
        image: FileInput,
        *,
        model: str | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
    ) -> ImageClassification:
        """The most likely ImageNet labels of a PNG, JPEG or WebP image, given as bytes, a path
        or a binary file."""
        return cast(
            ImageClassification,
            self._json(_calls.classify_image(image, model, top_k, min_score)),
        )

    @overload
    def transcribe(
        self,
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
        self,
        audio: FileInput,
        *,
        model: str = ...,
        response_format: Literal["text", "srt", "vtt"],
        prompt: str | None = None,
        temperature: float | None = None,
        language: str | None = None,
    ) -> str: ...

    def transcribe(
        self,
        audio: FileInput,
        *,
        model: str = DEFAULT_TRANSCRIPTION_MODEL,
        response_format: TranscriptFormat = "json",
        prompt: str | None = None,
        temperature: float | None = None,
        language: str | None = None,
    ) -> Transcription | str:
        """Transcribes a WAV file (bytes, a path or a binary file): a dict with ``text`` (and
        ``segments`` for ``verbose_json``), or the text, SRT or VTT itself."""
        call = _calls.transcribe(audio, model, response_format, prompt, temperature, language)
        response = self._send(call)
        if response_format in ("json", "verbose_json"):
            return cast(Transcription, parse_json(response))
        return response.text

    def list_models(self) -> list[JSONObject]:
        """The models the server serves (``id``, ``kind``, …)."""
        return cast(list[JSONObject], self._json(_calls.list_models())["data"])

    def train(self, *, wait: bool = False, model: JSONObject | None = None) -> JSONObject:
        """Trains a new recommendation model now (``wait=True``: returns once it serves).
        ``model``: an algorithm and its hyper-parameters, e.g. ``{"algorithm": "ease"}``."""
        return cast(JSONObject, self._json(_calls.train(wait, model)))

    def training_status(self) -> JSONObject:
        """The serving model's version and the training history."""
        return cast(JSONObject, self._json(_calls.training_status()))

    # -----------------------------------------------------------------------------------------
    # Usage

    def usage(
        self,
        *,
        start: TimeInput | None = None,
        end: TimeInput | None = None,
        group_by: Literal["day", "key", "model", "route", "tenant"] | None = None,
    ) -> UsageReport:
        """Requests, units and cost in a window (default: the current billing period)."""
        return cast(UsageReport, self._json(_calls.usage(start, end, group_by)))

    def invoice(self, month: str | date) -> Invoice:
        """A month's invoice (``"2026-11"`` or a date in the month)."""
        return cast(Invoice, self._json(_calls.invoice(month)))


class AsyncClient(BaseClient):
    """The asynchronous :class:`Client`: the same calls, awaited::

        async with marquee.AsyncClient() as client:
            items = await client.recommend("ann")
            async for text in await client.chat("Hello", stream=True):
                print(text, end="")

    Pass ``http_client`` to use your own ``httpx.AsyncClient``.
    """

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
        user_id: Id | None = None,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            batch_size=batch_size,
            max_batch_bytes=max_batch_bytes,
            user_id=user_id,
            default_headers=default_headers,
        )
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise TypeError("http_client must be an httpx.AsyncClient")
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient()

    async def close(self) -> None:
        """Releases the connections (unless the ``httpx.AsyncClient`` was passed in)."""
        if self._owns_http:
            await self._http.aclose()

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def with_options(
        self,
        *,
        timeout: float | httpx.Timeout | None | _NotGiven = NOT_GIVEN,
        max_retries: int | _NotGiven = NOT_GIVEN,
        max_retry_wait: float | _NotGiven = NOT_GIVEN,
        batch_size: int | _NotGiven = NOT_GIVEN,
        max_batch_bytes: int | _NotGiven = NOT_GIVEN,
    ) -> Self:
        """A copy with other settings, sharing this client's connections."""
        other = copy.copy(self)
        other._owns_http = False
        if not isinstance(timeout, _NotGiven):
            other.timeout = timeout
        if not isinstance(max_retries, _NotGiven):
            other.max_retries = check_int("max_retries", max_retries, 0)
        if not isinstance(max_retry_wait, _NotGiven):
            other.max_retry_wait = check_number("max_retry_wait", max_retry_wait, 0.0, float("inf"))
        if not isinstance(batch_size, _NotGiven):
            other.batch_size = check_int("batch_size", batch_size, 1)
        if not isinstance(max_batch_bytes, _NotGiven):
            other.max_batch_bytes = check_int("max_batch_bytes", max_batch_bytes, MIN_BATCH_BYTES)
        return other

    # -----------------------------------------------------------------------------------------
    # Sending

    async def _send(self, call: Call) -> httpx.Response:
        request = self._build(self._http, call)
        attempt = 0
        while True:
            try:
                response = await self._http.send(request, stream=call.stream)
            except httpx.TransportError as e:
                delay = self._error_delay(call, e, attempt)
                if delay is None:
                    if isinstance(e, httpx.TimeoutException):
                        raise APITimeoutError(request) from e
                    raise APIConnectionError(
                        f"cannot reach {self.base_url}: {e}", request=request
                    ) from e
                self._log_retry(call, delay, type(e).__name__)
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if response.is_success:
                return response
            try:
                await response.aread()
            finally:
                await response.aclose()
            delay = self._response_delay(call, response, attempt)
            if delay is None:
                raise error_from_response(response, response.text)
            self._log_retry(call, delay, retry_reason(response))
            await asyncio.sleep(delay)
            attempt += 1

    async def _json(self, call: Call) -> Any:
        return parse_json(await self._send(call))

    async def _bulk(
        self,
        path: str,
        what: str,
        elements: object,
        prepare: Callable[[int, object], dict[str, Any]],
        count_key: str,
        batch_size: int | None,
    ) -> BulkResult:
        size = _batch_size(self, batch_size)
        max_bytes = self.max_batch_bytes
        count = batches = offset = 0

        async def bodies() -> AsyncIterator[tuple[bytes, int]]:
            if isinstance(elements, AsyncIterable):
                batcher = _Batcher(size, max_bytes)
                index = 0
                async for element in elements:
                    part = _encode_element(what, index, prepare(index, element), max_bytes)
                    index += 1
                    full = batcher.push(part)
                    if full is not None:
                        yield full
                last = batcher.take()
                if last is not None:
                    yield last
            else:
                encoded = _bulk_elements(what, elements, prepare, max_bytes)
                for b in _bodies(encoded, size, max_bytes):
                    yield b

        async for body, n in bodies():
            try:
                answer = await self._json(_calls.batch_body(path, body))
            except APIError as e:
                e.batch_offset = offset
                raise
            count += int(answer.get(count_key, 0))
            batches += 1
            offset += n
        return {"count": count, "batches": batches}

    # -----------------------------------------------------------------------------------------
    # Recommendations

    async def recommend(
        self,
        user_id: Id,
        item_id: Id | None = None,
        n: int = 10,
        **filters: Unpack[RecommendFilters],
    ) -> list[Recommendation]:
        """See :meth:`Client.recommend`."""
        call = _calls.recommend(user_id, item_id, n, filters)
        return cast(list[Recommendation], await self._json(call))

    async def similar(
        self, item_id: Id, n: int = 10, **filters: Unpack[RecommendFilters]
    ) -> list[Recommendation]:
        return cast(list[Recommendation], await self._json(_calls.similar(item_id, n, filters)))

    async def popular(
        self, n: int = 10, **filters: Unpack[RecommendFilters]
    ) -> list[Recommendation]:
        return cast(list[Recommendation], await self._json(_calls.popular(n, filters)))

    async def trending(
        self, n: int = 10, **filters: Unpack[RecommendFilters]
    ) -> list[Recommendation]:
        return cast(list[Recommendation], await self._json(_calls.trending(n, filters)))

    async def session(
        self, items: Sequence[Id], n: int = 10, **filters: Unpack[RecommendFilters]
    ) -> list[Recommendation]:
        return cast(list[Recommendation], await self._json(_calls.session(items, n, filters)))

    async def search(
        self, q: str, n: int = 10, **filters: Unpack[SearchFilters]
    ) -> list[Recommendation]:
        return cast(list[Recommendation], await self._json(_calls.search(q, n, filters)))

    # -----------------------------------------------------------------------------------------
    # Users' data

    async def get_user_data(self, user_id: Id | None = None, *, history: int = 20) -> UserProfile:
        """See :meth:`Client.get_user_data`."""
        return await self.profile(_user_for_data(self, user_id), history=history)

    async def profile(self, user_id: Id, *, history: int = 20) -> UserProfile:
        return cast(UserProfile, await self._json(_calls.profile(user_id, history)))

    async def export_user(self, user_id: Id) -> UserExport:
        return cast(UserExport, await self._json(_calls.export_user(user_id)))

    async def delete_user(self, user_id: Id) -> Erasure:
        return cast(Erasure, await self._json(_calls.delete_user(user_id)))

    # -----------------------------------------------------------------------------------------
    # Catalogue

    async def get_item(self, item_id: Id) -> Item:
        return cast(Item, await self._json(_calls.get_item(item_id)))

    async def put_item(
        self,
        item_id: Id,
        *,
        title: str | None = None,
        categories: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        description: str | None = None,
        metadata: JSONObject | None = None,
        published_at: TimeInput | None = None,
        available_from: TimeInput | None = None,
        available_until: TimeInput | None = None,
        hidden: bool | None = None,
    ) -> Item:
        fields = dict(
            title=title,
            categories=categories,
            tags=tags,
            description=description,
            metadata=metadata,
            published_at=published_at,
            available_from=available_from,
            available_until=available_until,
            hidden=hidden,
        )
        return cast(Item, await self._json(_calls.put_item(item_id, fields)))

    async def patch_item(
        self,
        item_id: Id,
        *,
        title: str | None | _NotGiven = NOT_GIVEN,
        categories: Sequence[str] | _NotGiven = NOT_GIVEN,
        tags: Sequence[str] | _NotGiven = NOT_GIVEN,
        description: str | None | _NotGiven = NOT_GIVEN,
        metadata: JSONObject | _NotGiven = NOT_GIVEN,
        published_at: TimeInput | None | _NotGiven = NOT_GIVEN,
        available_from: TimeInput | None | _NotGiven = NOT_GIVEN,
        available_until: TimeInput | None | _NotGiven = NOT_GIVEN,
        hidden: bool | _NotGiven = NOT_GIVEN,
    ) -> Item:
        fields = dict(
            title=title,
            categories=categories,
            tags=tags,
            description=description,
            metadata=metadata,
            published_at=published_at,
            available_from=available_from,
            available_until=available_until,
            hidden=hidden,
        )
        return cast(Item, await self._json(_calls.patch_item(item_id, fields)))

    async def delete_item(self, item_id: Id) -> None:
        await self._send(_calls.delete_item(item_id))

    async def list_items(self, *, limit: int = 100, cursor: str | None = None) -> ItemPage:
        return cast(ItemPage, await self._json(_calls.list_items(limit, cursor)))

    def iter_items(self, *, page_size: int = 100) -> AsyncIterator[Item]:
        """Every item, following the pages' cursors: ``async for item in
        client.iter_items()``."""
        _calls.list_items(page_size, None)

        async def pages() -> AsyncIterator[Item]:
            cursor: str | None = None
            while True:
                page = await self.list_items(limit=page_size, cursor=cursor)
                for item in page["items"]:
                    yield item
                cursor = page["next_cursor"]
                if not cursor:
                    return

        return pages()

    async def upsert_items(
        self,
        items: Iterable[ItemInput] | AsyncIterable[ItemInput],
        *,
        batch_size: int | None = None,
    ) -> BulkResult:
        """See :meth:`Client.upsert_items` (also takes an async iterable)."""
        return await self._bulk(
            "/v1/items", "items", items, _calls.item_element, "upserted", batch_size
        )

    # -----------------------------------------------------------------------------------------
    # Users and feedback

    async def get_user(self, user_id: Id) -> User:
        return cast(User, await self._json(_calls.get_user(user_id)))

    async def put_user(self, user_id: Id, attributes: JSONObject | None = None) -> User:
        return cast(User, await self._json(_calls.put_user(user_id, attributes)))

    async def patch_user(self, user_id: Id, attributes: JSONObject) -> User:
        return cast(User, await self._json(_calls.patch_user(user_id, attributes)))

    async def list_users(self, *, limit: int = 100, cursor: str | None = None) -> UserPage:
        return cast(UserPage, await self._json(_calls.list_users(limit, cursor)))

    def iter_users(self, *, page_size: int = 100) -> AsyncIterator[User]:
        _calls.list_users(page_size, None)

        async def pages() -> AsyncIterator[User]:
            cursor: str | None = None
            while True:
                page = await self.list_users(limit=page_size, cursor=cursor)
                for user in page["users"]:
                    yield user
                cursor = page["next_cursor"]
                if not cursor:
                    return

        return pages()

    async def upsert_users(
        self,
        users: Iterable[UserInput] | AsyncIterable[UserInput],
        *,
        batch_size: int | None = None,
    ) -> BulkResult:
        return await self._bulk(
            "/v1/users", "users", users, _calls.user_element, "upserted", batch_size
        )

    async def insert_feedback(
        self,
        events: Iterable[FeedbackInput] | AsyncIterable[FeedbackInput],
        *,
        batch_size: int | None = None,
    ) -> BulkResult:
        return await self._bulk(
            "/v1/feedback", "events", events, _calls.feedback_element, "accepted", batch_size
        )

    async def add_feedback(
        self,
        user_id: Id,
        item_id: Id,
        type: str = "view",
        *,
        value: float | None = None,
        timestamp: TimeInput | None = None,
        recommendation_id: str | None = None,
    ) -> int:
        call = _calls.one_feedback(user_id, item_id, type, value, timestamp, recommendation_id)
        return int((await self._json(call)).get("accepted", 0))

    async def user_feedback(self, user_id: Id, *, limit: int = 100) -> list[Feedback]:
        answer = await self._json(_calls.user_feedback(user_id, limit))
        return cast(list[Feedback], answer["feedback"])

    # -----------------------------------------------------------------------------------------
    # Models

    async def embed(
        self, input: str | Sequence[str], *, model: str | None = None, dimensions: int | None = None
    ) -> EmbeddingsResponse:
        return cast(EmbeddingsResponse, await self._json(_calls.embed(input, model, dimensions)))

    @overload
    async def chat(
        self,
        messages: Messages,
        *,
        model: str = ...,
        stream: Literal[False] = False,
        **options: Unpack[ChatOptions],
    ) -> ChatCompletion: ...

    @overload
    async def chat(
        self,
        messages: Messages,
        *,
        model: str = ...,
        stream: Literal[True],
        **options: Unpack[ChatOptions],
    ) -> AsyncChatStream: ...

    async def chat(
        self,
        messages: Messages,
        *,
        model: str = DEFAULT_CHAT_MODEL,
        stream: bool = False,
        **options: Unpack[ChatOptions],
    ) -> ChatCompletion | AsyncChatStream:
        """See :meth:`Client.chat`; with ``stream=True``, an :class:`AsyncChatStream`
        (``async for text in stream``)."""
        response = await self._send(_calls.chat(messages, model, stream, options))
        if stream:
            return AsyncChatStream(
                response.aiter_bytes(), close=response.aclose, request=response.request
            )
        return cast(ChatCompletion, parse_json(response))

    async def speech(
        self,
        input: str,
        *,
        model: str = DEFAULT_SPEECH_MODEL,
        voice: str = DEFAULT_VOICE,
        speed: float | None = None,
        response_format: Literal["wav", "pcm"] = "wav",
    ) -> bytes:
        call = _calls.speech(input, model, voice, speed, response_format)
        return (await self._send(call)).content

    async def classify_image(
        self,
        image: FileInput,
        *,
        model: str | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
    ) -> ImageClassification:
        call = _calls.classify_image(image, model, top_k, min_score)
        return cast(ImageClassification, await self._json(call))

    @overload
    async def transcribe(
        self,
        audio: FileInput,
        *,
        model: str = ...,
        response_format: Literal["json", "verbose_json"] = "json",
        prompt: str | None = None,
        temperature: float | None = None,
        language: str | None = None,
    ) -> Transcription: ...

    @overload
    async def transcribe(
        self,
        audio: FileInput,
        *,
        model: str = ...,
        response_format: Literal["text", "srt", "vtt"],
        prompt: str | None = None,
        temperature: float | None = None,
        language: str | None = None,
    ) -> str: ...

    async def transcribe(
        self,
        audio: FileInput,
        *,
        model: str = DEFAULT_TRANSCRIPTION_MODEL,
        response_format: TranscriptFormat = "json",
        prompt: str | None = None,
        temperature: float | None = None,
        language: str | None = None,
    ) -> Transcription | str:
        call = _calls.transcribe(audio, model, response_format, prompt, temperature, language)
        response = await self._send(call)
        if response_format in ("json", "verbose_json"):
            return cast(Transcription, parse_json(response))
        return response.text

    async def list_models(self) -> list[JSONObject]:
        return cast(list[JSONObject], (await self._json(_calls.list_models()))["data"])

    async def train(self, *, wait: bool = False, model: JSONObject | None = None) -> JSONObject:
        return cast(JSONObject, await self._json(_calls.train(wait, model)))

    async def training_status(self) -> JSONObject:
        return cast(JSONObject, await self._json(_calls.training_status()))

    # -----------------------------------------------------------------------------------------
    # Usage

    async def usage(
        self,
        *,
        start: TimeInput | None = None,
        end: TimeInput | None = None,
        group_by: Literal["day", "key", "model", "route", "tenant"] | None = None,
    ) -> UsageReport:
        return cast(UsageReport, await self._json(_calls.usage(start, end, group_by)))

    async def invoice(self, month: str | date) -> Invoice:
        return cast(Invoice, await self._json(_calls.invoice(month)))
