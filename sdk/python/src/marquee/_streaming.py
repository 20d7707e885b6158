"""Server-sent events, and the text deltas of a streamed chat completion.

``POST /v1/chat/completions`` with ``stream: true`` answers ``text/event-stream`` (OpenAI's
format): one ``data: {chunk}`` event per generated piece, ending with ``data: [DONE]``. The
decoder here follows the WHATWG rules (``\\n``, ``\\r\\n`` or ``\\r`` line ends, split anywhere
between network reads; multi-line ``data``; comments; ``event``/``id``/``retry`` fields), so it
does not depend on how the bytes happen to be chunked. An error the server reports after the
stream started (it arrives as ``data: {"error": …}``) is raised as :class:`APIError`; a stream
that stops before ``[DONE]`` raises :class:`APIConnectionError` rather than passing truncated text
off as complete.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from ._exceptions import APIConnectionError, APIError, APITimeoutError
from ._types import CompletionUsage

__all__ = ["ServerSentEvent", "SSEDecoder", "ChatStream", "AsyncChatStream"]


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental ``text/event-stream`` decoder: :meth:`feed` it bytes as they arrive and it
    returns the events completed so far."""

    def __init__(self) -> None:
        self._buffer = b""
        self._started = False
        self._data: list[str] = []
        self._event: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        self._buffer += chunk
        return self._drain(final=False)

    def flush(self) -> list[ServerSentEvent]:
        """Ends the stream: a last line without a line end is processed; an event not followed by
        a blank line is discarded, as the specification says."""
        events = self._drain(final=True)
        if self._buffer:
            event = self._line(self._buffer.decode("utf-8", errors="replace"))
            self._buffer = b""
            if event is not None:
                events.append(event)
        self._data = []
        self._event = None
        return events

    def _drain(self, final: bool) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        while True:
            buf = self._buffer
            lf = buf.find(b"\n")
            cr = buf.find(b"\r")
            if lf < 0 and cr < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                if cr == len(buf) - 1 and not final:
                    # A `\r` at the end of what has arrived: a `\n` may follow in the next read.
                    break
                line, rest = buf[:cr], buf[cr + 1 :]
                if rest.startswith(b"\n"):
                    rest = rest[1:]
            else:
                line, rest = buf[:lf], buf[lf + 1 :]
            self._buffer = rest
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not self._started:
            self._started = True
            line = line.removeprefix("\ufeff")
        if line == "":
            if not self._data:
                self._event = None
                return None
            event = ServerSentEvent(
                data="\n".join(self._data),
                event=self._event or "message",
                id=self._last_id,
                retry=self._retry,
            )
            self._data = []
            self._event = None
            return event
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "retry":
            if value.isdigit():
                self._retry = int(value)
        return None


class _Done:
    pass


_DONE = _Done()


class _ChatState:
    """What the chunks of one completion have said so far."""

    def __init__(self, request: httpx.Request | None) -> None:
        self.request = request
        self.id: str | None = None
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.usage: CompletionUsage | None = None
        self.parts: list[str] = []
        self.done = False

    def handle(self, event: ServerSentEvent) -> str | _Done | None:
        """The text delta an event carries, ``_DONE`` at the end, ``None`` for nothing."""
        if event.data.strip() == "[DONE]":
            self.done = True
            return _DONE
        if event.event not in ("message", "chunk"):
            return None
        try:
            chunk: Any = json.loads(event.data)
        except ValueError as e:
            raise APIError(
                f"the chat stream sent an event that is not JSON: {event.data[:200]!r}",
                request=self.request,
            ) from e
        if not isinstance(chunk, dict):
            return None
        error = chunk.get("error")
        if isinstance(error, dict):
            raise APIError(
                str(error.get("message") or "the generation failed"),
                request=self.request,
                body=chunk,
                code=error.get("code") if isinstance(error.get("code"), str) else None,
                param=error.get("param") if isinstance(error.get("param"), str) else None,
                type=error.get("type") if isinstance(error.get("type"), str) else None,
            )
        self.id = chunk.get("id", self.id)
        self.model = chunk.get("model", self.model)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage  # type: ignore[assignment]
        text: str | None = None
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                text = (text or "") + delta["content"]
        if text:
            self.parts.append(text)
            return text
        return None

    def truncated(self) -> APIConnectionError:
        return APIConnectionError(
            "the chat stream ended before [DONE]: the answer is incomplete",
            request=self.request,
        )


def _wrap_transport_error(e: httpx.TransportError, request: httpx.Request | None) -> APIError:
    if isinstance(e, httpx.TimeoutException):
        return APITimeoutError(request)
    return APIConnectionError(f"the chat stream broke: {type(e).__name__}", request=request)


class ChatStream(Iterator[str]):
    """The text of a streamed chat completion, piece by piece, as the model writes it::

        with client.chat("Write a tagline for a heist film.", stream=True) as stream:
            for text in stream:
                print(text, end="", flush=True)
        print(stream.finish_reason, stream.usage)

    Iterating to the end, leaving the ``with`` block or :meth:`close` releases the connection
    (closing early stops the generation on the server). ``id``, ``model``, ``finish_reason`` and
    ``usage`` (with ``include_usage=True``) are filled in as the chunks arrive; :attr:`text` is
    everything received so far.
    """

    def __init__(
        self,
        chunks: Iterable[bytes],
        *,
        close: Callable[[], None] | None = None,
        request: httpx.Request | None = None,
    ) -> None:
        self._chunks = chunks
        self._close = close
        self._state = _ChatState(request)
        self._iterator = self._deltas()

    def _deltas(self) -> Iterator[str]:
        decoder = SSEDecoder()
        state = self._state
        try:
            try:
                for chunk in self._chunks:
                    for event in decoder.feed(chunk):
                        out = state.handle(event)
                        if out is _DONE:
                            return
                        if isinstance(out, str):
                            yield out
            except httpx.TransportError as e:
                raise _wrap_transport_error(e, state.request) from e
            for event in decoder.flush():
                out = state.handle(event)
                if out is _DONE:
                    return
                if isinstance(out, str):
                    yield out
            raise state.truncated()
        finally:
            self.close()

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        return next(self._iterator)

    def close(self) -> None:
        """Releases the connection (stopping the generation if it is still running)."""
        close, self._close = self._close, None
        if close is not None:
            close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def id(self) -> str | None:
        return self._state.id

    @property
    def model(self) -> str | None:
        return self._state.model

    @property
    def finish_reason(self) -> str | None:
        """``stop`` or ``length``, once the last chunk has arrived."""
        return self._state.finish_reason

    @property
    def usage(self) -> CompletionUsage | None:
        """Token counts, sent at the end when the stream was asked ``include_usage=True``."""
        return self._state.usage

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._state.parts)

    def until_done(self) -> str:
        """Reads the rest of the stream; returns the whole text."""
        for _ in self:
            pass
        return self.text


class AsyncChatStream(AsyncIterator[str]):
    """The asynchronous :class:`ChatStream`: ``async for text in stream``, ``async with``,
    :meth:`aclose`."""

    def __init__(
        self,
        chunks: AsyncIterable[bytes],
        *,
        close: Callable[[], Awaitable[None]] | None = None,
        request: httpx.Request | None = None,
    ) -> None:
        self._chunks = chunks
        self._close = close
        self._state = _ChatState(request)
        self._iterator = self._deltas()

    async def _deltas(self) -> AsyncIterator[str]:
        decoder = SSEDecoder()
        state = self._state
        try:
            try:
                async for chunk in self._chunks:
                    for event in decoder.feed(chunk):
                        out = state.handle(event)
                        if out is _DONE:
                            return
                        if isinstance(out, str):
                            yield out
            except httpx.TransportError as e:
                raise _wrap_transport_error(e, state.request) from e
            for event in decoder.flush():
                out = state.handle(event)
                if out is _DONE:
                    return
                if isinstance(out, str):
                    yield out
            raise state.truncated()
        finally:
            await self.aclose()

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> str:
        return await self._iterator.__anext__()

    async def aclose(self) -> None:
        """Releases the connection (stopping the generation if it is still running)."""
        close, self._close = self._close, None
        if close is not None:
            await close()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def id(self) -> str | None:
        return self._state.id

    @property
    def model(self) -> str | None:
        return self._state.model

    @property
    def finish_reason(self) -> str | None:
        return self._state.finish_reason

    @property
    def usage(self) -> CompletionUsage | None:
        return self._state.usage

    @property
    def text(self) -> str:
        return "".join(self._state.parts)

    async def until_done(self) -> str:
        """Reads the rest of the stream; returns the whole text."""
        async for _ in self:
            pass
        return self.text
