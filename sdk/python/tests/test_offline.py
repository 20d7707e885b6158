"""What the SDK does without a server: the event-stream parser on a stream captured from
Marquee, argument checks (nothing is sent), key hygiene, errors of unreachable or silent
servers, the retry rule (against a scripted local HTTP server), chunking of bulk uploads by
size, and the installed package."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import socket
import threading
import time
import unittest
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _support  # noqa: F401  (checks that the installed package is this tree's)
import httpx

import marquee
from marquee._base import (
    BACKOFF_MAX,
    DEFAULT_MAX_BATCH_BYTES,
    Call,
    backoff,
    may_repeat,
    retry_wait,
)
from marquee._exceptions import error_from_response, retry_after_seconds

CAPTURED = (Path(__file__).parent / "fixtures" / "chat_stream.sse").read_bytes()
"""`POST /v1/chat/completions` with `stream: true`, `include_usage`, `max_tokens: 8`, as
smollm2-135m-instruct answered it."""
CAPTURED_TEXT = "S'il dépasse en f"
KEY = "mq_sk_0123456789abcdefSECRET"


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def offline_client(**kwargs: object) -> marquee.Client:
    """A client of a port nothing listens on, without retries: a request that went out would
    raise APIConnectionError, so an argument error proves nothing was sent."""
    return marquee.Client(f"http://127.0.0.1:{closed_port()}", KEY, max_retries=0, **kwargs)  # type: ignore[arg-type]


class SSEDecoderTest(unittest.TestCase):
    def events(self, chunks: list[bytes]) -> list[marquee.ServerSentEvent]:
        decoder = marquee.SSEDecoder()
        out = []
        for chunk in chunks:
            out.extend(decoder.feed(chunk))
        out.extend(decoder.flush())
        return out

    def test_the_captured_stream_decodes_the_same_however_it_is_split(self) -> None:
        whole = self.events([CAPTURED])
        self.assertEqual(len(whole), 12)
        self.assertEqual(whole[-1].data, "[DONE]")
        self.assertTrue(all(e.event == "message" for e in whole))
        byte_by_byte = self.events([CAPTURED[i : i + 1] for i in range(len(CAPTURED))])
        self.assertEqual(byte_by_byte, whole)
        # Every split point, including inside "é" (two bytes) and between "\n" and "\n".
        for cut in range(0, len(CAPTURED), 37):
            self.assertEqual(self.events([CAPTURED[:cut], CAPTURED[cut:]]), whole)

    def test_line_ends_comments_fields_and_multiline_data(self) -> None:
        stream = (
            b"\xef\xbb\xbf: a comment\r\n"
            b"event: update\r\nid: 7\r\nretry: 1500\r\ndata: first\r\ndata:second\r\n\r\n"
            b"data: cr only\r\r"
            b"data\n\n"
            b"id: 8\nevent: ignored-without-data\n\n"
            b'data: {"a": 1}\n\n'
            b"data: never dispatched"
        )
        # The same with `\r\n` split between two reads.
        for chunks in ([stream], [stream[:20], stream[20:21], stream[21:]]):
            events = self.events(chunks)
            self.assertEqual(
                [(e.event, e.data, e.id) for e in events],
                [
                    ("update", "first\nsecond", "7"),
                    ("message", "cr only", "7"),
                    ("message", "", "7"),
                    ("message", '{"a": 1}', "8"),
                ],
            )
            self.assertEqual(events[0].retry, 1500)


class ChatStreamTest(unittest.TestCase):
    def test_text_deltas_finish_reason_and_usage(self) -> None:
        closed = []
        stream = marquee.ChatStream(
            [CAPTURED[i : i + 50] for i in range(0, len(CAPTURED), 50)],
            close=lambda: closed.append(True),
        )
        deltas = list(stream)
        self.assertEqual(deltas, ["S", "'", "il", " dé", "p", "asse", " en", " f"])
        self.assertEqual("".join(deltas), CAPTURED_TEXT)
        self.assertEqual(stream.text, CAPTURED_TEXT)
        self.assertEqual(stream.finish_reason, "length")
        self.assertEqual(
            stream.usage, {"completion_tokens": 8, "prompt_tokens": 34, "total_tokens": 42}
        )
        self.assertEqual(stream.model, "smollm2-135m-instruct")
        self.assertTrue(stream.id and stream.id.startswith("chatcmpl-"))
        self.assertEqual(closed, [True], "the connection is released at the end")

    def test_an_error_event_is_raised_with_the_servers_code(self) -> None:
        first_chunk = CAPTURED.split(b"\n\n")[1] + b"\n\n"
        error = (
            b'data: {"error": {"code": "internal_error", "message": "generation failed",'
            b' "type": "server_error", "param": null}}\n\ndata: [DONE]\n\n'
        )
        stream = marquee.ChatStream([first_chunk, error])
        self.assertEqual(next(stream), "S")
        with self.assertRaises(marquee.APIError) as caught:
            next(stream)
        self.assertEqual(caught.exception.code, "internal_error")
        self.assertEqual(caught.exception.message, "generation failed")
        self.assertEqual(stream.text, "S")

    def test_a_stream_cut_before_done_is_not_passed_off_as_complete(self) -> None:
        cut = CAPTURED[: CAPTURED.index(b"data: [DONE]")]
        closed = []
        stream = marquee.ChatStream([cut], close=lambda: closed.append(True))
        with self.assertRaises(marquee.APIConnectionError):
            stream.until_done()
        self.assertEqual(stream.text, CAPTURED_TEXT)
        self.assertEqual(closed, [True])

    def test_closing_early_releases_the_connection(self) -> None:
        closed = []
        with marquee.ChatStream([CAPTURED], close=lambda: closed.append(True)) as stream:
            self.assertEqual(next(stream), "S")
        self.assertEqual(closed, [True])

    def test_the_async_stream(self) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(CAPTURED), 7):
                await asyncio.sleep(0)
                yield CAPTURED[i : i + 7]

        async def run() -> tuple[list[str], marquee.AsyncChatStream]:
            closed = []

            async def close() -> None:
                closed.append(True)

            stream = marquee.AsyncChatStream(chunks(), close=close)
            out = [text async for text in stream]
            self.assertEqual(closed, [True])
            return out, stream

        deltas, stream = asyncio.run(run())
        self.assertEqual("".join(deltas), CAPTURED_TEXT)
        self.assertEqual(stream.finish_reason, "length")
        self.assertEqual(stream.usage and stream.usage["total_tokens"], 42)


class ArgumentsTest(unittest.TestCase):
    """Bad arguments are refused before anything is sent, naming the argument."""

    def setUp(self) -> None:
        self.client = offline_client()

    def tearDown(self) -> None:
        self.client.close()

    def assertRefused(self, error: type[Exception], pattern: str, call, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        with self.assertRaisesRegex(error, pattern):
            call(*args, **kwargs)

    def test_ids(self) -> None:
        c = self.client
        self.assertRefused(ValueError, "user_id must not be empty", c.recommend, "")
        self.assertRefused(TypeError, "user_id must be a str", c.recommend, None)
        self.assertRefused(TypeError, "user_id must be a str", c.recommend, True)
        self.assertRefused(TypeError, "user_id must be a str", c.recommend, 1.5)
        self.assertRefused(ValueError, "item_id must not be empty", c.recommend, "ann", "")
        self.assertRefused(ValueError, "longer than 256 bytes", c.get_item, "é" * 129)
        self.assertRefused(ValueError, "control characters", c.get_user, "ann\n")
        self.assertRefused(ValueError, "control characters", c.delete_user, "a\x00b")

    def test_n_and_filters(self) -> None:
        c = self.client
        self.assertRefused(
            ValueError, r"n must be between 1 and 1000 \(got 0\)", c.recommend, "ann", n=0
        )
        self.assertRefused(ValueError, "n must be between 1 and 1000", c.popular, 1001)
        self.assertRefused(TypeError, "n must be an int", c.popular, "5")
        self.assertRefused(TypeError, "n must be an int", c.popular, 5.0)
        self.assertRefused(TypeError, "unexpected option 'categry'", c.popular, categry="Crime")
        self.assertRefused(
            TypeError, "unexpected option 'exploration'", c.search, "q", exploration=0.1
        )
        self.assertRefused(
            ValueError, "diversity must be between 0 and 1", c.popular, diversity=1.5
        )
        self.assertRefused(
            ValueError, "exploration must be between 0 and 0.5", c.popular, exploration=0.6
        )
        self.assertRefused(ValueError, "diversity", c.popular, diversity=float("nan"))
        self.assertRefused(
            TypeError, "exclude_seen must be a bool", c.recommend, "ann", exclude_seen="no"
        )
        self.assertRefused(
            ValueError, "category_match must be 'any' or 'all'", c.popular, category_match="some"
        )
        self.assertRefused(ValueError, "contains a comma", c.popular, category=["Crime, Drama"])
        self.assertRefused(ValueError, "at least one category", c.popular, category=" , ")
        self.assertRefused(ValueError, "contains a comma", c.recommend, "ann", exclude=["a,b"])
        self.assertRefused(
            ValueError, "max_per_category must be at least 1", c.popular, max_per_category=0
        )
        self.assertRefused(ValueError, "filter must not be empty", c.popular, filter=" ")
        self.assertRefused(ValueError, "q must not be empty", c.search, "")
        self.assertRefused(TypeError, "items must be a list", c.session, "heat")

    def test_writes(self) -> None:
        c = self.client
        self.assertRefused(ValueError, "at least one field", c.patch_item, "heat")
        self.assertRefused(
            TypeError, "categories must be a list of str", c.put_item, "heat", categories="Crime"
        )
        self.assertRefused(TypeError, "metadata must be a dict", c.put_item, "heat", metadata=[1])
        self.assertRefused(
            TypeError, "published_at must be a datetime", c.put_item, "heat", published_at=True
        )
        self.assertRefused(
            ValueError, "tags cannot be cleared with None", c.patch_item, "heat", tags=None
        )
        self.assertRefused(TypeError, "attributes must be a dict", c.patch_user, "ann", "premium")
        self.assertRefused(
            ValueError, r"items\[1\] has no 'id'", c.upsert_items, [{"id": "a"}, {"title": "b"}]
        )
        self.assertRefused(TypeError, "items must be a list", c.upsert_items, {"id": "a"})
        self.assertRefused(
            ValueError,
            r"events\[0\]\['user_id'\] must not be empty",
            c.insert_feedback,
            [{"user_id": "", "item_id": "heat", "type": "view"}],
        )
        self.assertRefused(
            ValueError,
            r"events\[0\] has no 'type'",
            c.insert_feedback,
            [{"user_id": "a", "item_id": "b"}],
        )
        self.assertRefused(
            ValueError, "batch_size must be at least 1", c.insert_feedback, [], batch_size=0
        )
        self.assertRefused(
            ValueError, "cannot be sent as JSON", c.put_item, "heat", metadata={"x": float("inf")}
        )
        self.assertRefused(
            TypeError, "cannot be sent as JSON", c.put_item, "heat", metadata={"x": object()}
        )
        self.assertRefused(ValueError, "month must be 'YYYY-MM'", c.invoice, "2026-13")
        self.assertRefused(ValueError, "group_by must be", c.usage, group_by="week")
        self.assertRefused(
            ValueError, "history must be between 0 and 100", c.profile, "ann", history=101
        )
        self.assertRefused(ValueError, "limit must be between 1 and 1000", c.list_items, limit=0)
        self.assertRefused(
            ValueError,
            "page_size must be between 1 and 1000|limit must be between",
            c.iter_items,
            page_size=5000,
        )

    def test_models(self) -> None:
        c = self.client
        self.assertRefused(ValueError, "messages must not be empty", c.chat, [])
        self.assertRefused(
            ValueError, r"messages\[0\]\['role'\]", c.chat, [{"role": "robot", "content": "hi"}]
        )
        self.assertRefused(
            ValueError, "temperature must be between 0 and 2", c.chat, "hi", temperature=3
        )
        self.assertRefused(TypeError, "unexpected option 'tools'", c.chat, "hi", tools=[])
        self.assertRefused(
            ValueError, "include_usage applies to stream=True", c.chat, "hi", include_usage=True
        )
        self.assertRefused(ValueError, "input holds 2049 texts", c.embed, ["x"] * 2049)
        self.assertRefused(TypeError, r"the elements of input must be str", c.embed, ["x", 1])
        self.assertRefused(ValueError, "longer than 4096 characters", c.speech, "x" * 4097)
        self.assertRefused(
            ValueError,
            "response_format must be 'wav' or 'pcm'",
            c.speech,
            "hi",
            response_format="mp3",
        )
        self.assertRefused(ValueError, "speed must be between 0.25 and 4", c.speech, "hi", speed=5)
        self.assertRefused(ValueError, "image is empty", c.classify_image, b"")
        self.assertRefused(
            TypeError, "image must be bytes, a path or a binary file", c.classify_image, 42
        )
        self.assertRefused(FileNotFoundError, "no-such-file", c.transcribe, "/no-such-file.wav")
        self.assertRefused(
            ValueError,
            "response_format must be one of",
            c.transcribe,
            b"RIFF",
            response_format="mp3",
        )

    def test_configuration(self) -> None:
        with self.assertRaisesRegex(ValueError, "base_url must be an http"):
            marquee.Client("localhost:8080", KEY)
        with self.assertRaisesRegex(ValueError, "max_retries must be at least 0"):
            marquee.Client("http://x", KEY, max_retries=-1)
        with self.assertRaises(ValueError) as caught:
            marquee.Client("http://x", "mq_sk_abc def")
        self.assertNotIn("abc", str(caught.exception), "the key is not echoed")
        self.assertEqual(marquee.Client("http://h:1/v1/", KEY).base_url, "http://h:1")
        with self.assertRaisesRegex(ValueError, "needs a user id"):
            marquee.Client("http://x", KEY, user_id=None).get_user_data()


class KeyHygieneTest(unittest.TestCase):
    def test_repr_and_errors_hide_the_key(self) -> None:
        client = offline_client()
        self.assertNotIn("SECRET", repr(client))
        self.assertNotIn("0123456789", repr(client))
        self.assertIn("mq_sk_***", repr(client))
        with self.assertRaises(marquee.APIConnectionError) as caught:
            client.popular()
        for text in (str(caught.exception), repr(caught.exception), repr(caught.exception.request)):
            self.assertNotIn("SECRET", text)
        self.assertEqual(repr(marquee.Client("http://x", "opaque-key-value")).count("opaque"), 0)


class TransportErrorsTest(unittest.TestCase):
    def test_an_unreachable_server_is_a_connection_error_after_retries(self) -> None:
        client = marquee.Client(f"http://127.0.0.1:{closed_port()}", KEY, max_retries=2)
        started = time.monotonic()
        with self.assertLogs("marquee", logging.INFO) as logs:
            with self.assertRaises(marquee.APIConnectionError) as caught:
                client.popular()
        self.assertNotIsInstance(caught.exception, marquee.APITimeoutError)
        self.assertEqual(len([r for r in logs.output if "Retrying GET /v1/popular" in r]), 2)
        self.assertGreater(time.monotonic() - started, (0.5 + 1.0) * 0.75 * 0.9)
        self.assertFalse(any(KEY in line for line in logs.output))
        # A call that may not be repeated is not retried, even when the connection was refused.
        with self.assertNoLogs("marquee", logging.INFO):
            with self.assertRaises(marquee.APIConnectionError):
                client.chat("hi")
            with self.assertRaises(marquee.APIConnectionError):
                client.train()

    def test_a_silent_server_times_out(self) -> None:
        # A listener that accepts connections and never answers.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            listener.settimeout(0.1)
            while not stop.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except OSError:
                    pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            port = listener.getsockname()[1]

            def connections(expected: int) -> int:
                # The listener thread may take a moment to accept what the kernel queued.
                deadline = time.monotonic() + 2.0
                while len(accepted) < expected and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(0.2)  # and nothing more arrives
                return len(accepted)

            client = marquee.Client(f"http://127.0.0.1:{port}", KEY, timeout=0.3, max_retries=1)
            started = time.monotonic()
            with self.assertRaises(marquee.APITimeoutError):
                client.popular()  # idempotent: tried twice
            self.assertGreater(time.monotonic() - started, 0.6)
            self.assertEqual(connections(2), 2)
            while accepted:
                accepted.pop().close()
            with self.assertRaises(marquee.APITimeoutError):
                client.chat("hi")  # may have been acted on: not retried
            self.assertEqual(connections(1), 1)
            client.close()
        finally:
            stop.set()
            thread.join()
            for s in accepted:
                s.close()
            listener.close()


class RetryRulesTest(unittest.TestCase):
    def test_backoff_grows_with_jitter_and_is_capped(self) -> None:
        for attempt, full in [(0, 0.5), (1, 1.0), (2, 2.0), (10, BACKOFF_MAX)]:
            delays = [backoff(attempt) for _ in range(200)]
            self.assertTrue(
                all(0.75 * full <= d <= full for d in delays), (attempt, min(delays), max(delays))
            )
            self.assertGreater(len(set(delays)), 100, "jittered")

    def test_retry_after_in_seconds_ms_or_a_date(self) -> None:
        self.assertEqual(retry_after_seconds(httpx.Headers({"retry-after": "2"})), 2.0)
        self.assertEqual(retry_after_seconds(httpx.Headers({"retry-after-ms": "250"})), 0.25)
        self.assertIsNone(retry_after_seconds(httpx.Headers({"retry-after": "soon"})))
        self.assertIsNone(retry_after_seconds(httpx.Headers({})))
        later = datetime.now(UTC) + timedelta(seconds=30)
        date = email.utils.format_datetime(later, usegmt=True)
        wait = retry_after_seconds(httpx.Headers({"retry-after": date}))
        self.assertIsNotNone(wait)
        self.assertTrue(28 <= (wait or 0) <= 31, wait)

    def test_error_classes_by_status(self) -> None:
        # Statuses the test server cannot be made to answer (400 needs a request this SDK
        # refuses to build; 409 an admin call): the mapping on answers of Marquee's shape.
        request = httpx.Request("POST", "http://h/v1/x")
        for status, cls in [
            (400, marquee.BadRequestError),
            (409, marquee.ConflictError),
            (413, marquee.APIStatusError),
            (502, marquee.InternalServerError),
        ]:
            body = (
                f'{{"error": {{"code": "c{status}", "message": "m", "type": "t", "param": "p"}}}}'
            )
            response = httpx.Response(status, text=body, request=request)
            error = error_from_response(response, body)
            self.assertIs(type(error), cls)
            self.assertEqual(
                (error.status_code, error.status, error.code, error.param),
                (status, status, f"c{status}", "p"),
            )
            self.assertEqual(str(error), f"{status} c{status}: m")
        # A proxy's HTML page: the status and the text, no code.
        response = httpx.Response(502, text="<html>Bad gateway</html>", request=request)
        error = error_from_response(response, response.text)
        self.assertIsNone(error.code)
        self.assertIn("Bad gateway", error.message)


# ---------------------------------------------------------------------------------------------
# The retry rule, against a local HTTP server that answers from a script.

Answer = tuple[int, dict[str, str], object]
"""A scripted answer: status, headers, and a body (JSON unless bytes)."""


class Scripted:
    """A local HTTP server answering each request with the next scripted answer (200 ``{}``
    once the script is used up), recording method, path, body size and arrival time."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, bytes, float]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                scripted.requests.append((self.command, self.path, body, time.time()))
                status, headers, payload = (
                    scripted.answers.pop(0) if scripted.answers else (200, {}, {})
                )
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list[str]:
        return [f"{method} {path.split('?')[0]}" for method, path, _, _ in self.requests]

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def error(code: str, status: int = 429) -> dict[str, object]:
    return {"error": {"code": code, "message": f"{code} (scripted)", "type": "t", "param": None}}


FAST = {"retry-after-ms": "1"}
"""Retry at once (the backoff is tested on its own)."""
EMBEDDING = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [1.0]}]}


class RetryRuleTest(unittest.TestCase):
    """The rule shared with the TypeScript and Rust SDKs (README, "Retries")."""

    def client(self, server: Scripted, **kwargs: Any) -> marquee.Client:
        return marquee.Client(server.base_url, KEY, max_retries=3, **kwargs)

    def test_502_503_504_and_429_are_retried_for_idempotent_calls(self) -> None:
        answers: list[Answer] = [
            (502, FAST, b"<html>Bad gateway</html>"),
            (504, FAST, b""),
            (503, FAST, error("overloaded", 503)),
            (200, {}, [{"item_id": "heat"}]),
        ]
        with Scripted(answers) as server, self.client(server) as c:
            self.assertEqual(c.popular(n=1), [{"item_id": "heat"}])
            self.assertEqual(server.paths(), ["GET /v1/popular"] * 4)
        for path, call in [
            ("PUT /v1/items/heat", lambda c: c.put_item("heat", title="Heat")),
            ("PATCH /v1/items/heat", lambda c: c.patch_item("heat", title="Heat")),
            ("DELETE /v1/items/heat", lambda c: c.delete_item("heat")),
            ("POST /v1/feedback", lambda c: c.add_feedback("ann", "heat")),
            ("POST /v1/items", lambda c: c.upsert_items([{"id": "heat"}])),
            ("POST /v1/users", lambda c: c.upsert_users([{"id": "ann"}])),
            ("POST /v1/recommend/session", lambda c: c.session(["heat"])),
            ("POST /v1/audio/speech", lambda c: c.speech("hello")),
            ("POST /v1/images/classify", lambda c: c.classify_image(b"image")),
            ("POST /v1/audio/transcriptions", lambda c: c.transcribe(b"audio")),
        ]:
            with Scripted([(502, FAST, b""), (504, FAST, b"")]) as server, self.client(server) as c:
                call(c)
                self.assertEqual(server.paths(), [path] * 3)

    def test_embeddings_are_retried_on_429(self) -> None:
        answers: list[Answer] = [(429, FAST, error("rate_limit_exceeded")), (200, {}, EMBEDDING)]
        with Scripted(answers) as server, self.client(server) as c:
            self.assertEqual(c.embed("hello")["data"][0]["embedding"], [1.0])
            self.assertEqual(server.paths(), ["POST /v1/embeddings"] * 2)

    def test_chat_training_and_other_posts_are_never_retried(self) -> None:
        for status in (429, 502, 503, 504):
            with Scripted([(status, FAST, error("busy", status))] * 3) as server:
                with self.client(server) as c:
                    with self.assertRaises(marquee.APIStatusError) as caught:
                        c.chat("hi")
                    self.assertEqual(caught.exception.status_code, status)
                    with self.assertRaises(marquee.APIStatusError):
                        c.chat("hi", stream=True)
                    with self.assertRaises(marquee.APIStatusError):
                        c.train()
                self.assertEqual(
                    server.paths(),
                    ["POST /v1/chat/completions"] * 2 + ["POST /v1/models/train"],
                )

    def test_quota_and_budget_exceeded_are_not_retried(self) -> None:
        for code in ("quota_exceeded", "budget_exceeded"):
            answers: list[Answer] = [(429, {"retry-after": "1"}, error(code))]
            with Scripted(answers) as server, self.client(server) as c:
                started = time.monotonic()
                with self.assertRaises(marquee.RateLimitError) as caught:
                    c.popular()
                self.assertEqual(caught.exception.code, code)
                self.assertEqual(caught.exception.retry_after, 1.0)
                self.assertLess(time.monotonic() - started, 0.9, "raised at once")
                self.assertEqual(len(server.requests), 1)

    def test_a_wait_over_max_retry_wait_is_raised_at_once(self) -> None:
        answers: list[Answer] = [(503, {"retry-after": "5"}, error("busy", 503))]
        with Scripted(answers) as server, self.client(server, max_retry_wait=2.0) as c:
            with self.assertRaises(marquee.InternalServerError) as caught:
                c.popular()
            self.assertEqual(caught.exception.retry_after, 5.0)
            self.assertEqual(len(server.requests), 1)
        with Scripted(answers) as server, self.client(server) as c:
            with self.assertRaises(marquee.InternalServerError):
                c.with_options(max_retry_wait=1).popular()
            self.assertEqual(len(server.requests), 1)

    def test_retry_after_ms_wins_and_is_honoured(self) -> None:
        answers: list[Answer] = [
            (429, {"retry-after-ms": "300", "retry-after": "30"}, error("rate_limit_exceeded")),
        ]
        with Scripted(answers) as server, self.client(server) as c:
            c.popular()
            (_, _, _, first), (_, _, _, second) = server.requests
            self.assertGreaterEqual(second - first, 0.3, "never earlier than asked")
            self.assertLess(second - first, 0.3 + 0.03 + 1.0, "at most 10 % later (and slack)")

    def test_an_http_date_retry_after_is_honoured(self) -> None:
        at = time.time() + 1.5
        date = email.utils.formatdate(at, usegmt=True)  # whole seconds: 0.5–1.5 s from now
        answers: list[Answer] = [(503, {"retry-after": date}, error("busy", 503))]
        with Scripted(answers) as server, self.client(server) as c:
            c.get_item("heat")
            (_, _, _, first), (_, _, _, second) = server.requests
            asked = email.utils.parsedate_to_datetime(date).timestamp()
            self.assertGreaterEqual(second, asked, "not before the date")
            self.assertLess(second - first, 3.0)

    def test_fractional_retry_after_seconds(self) -> None:
        answers: list[Answer] = [(503, {"retry-after": "0.4"}, error("busy", 503))]
        with Scripted(answers) as server, self.client(server) as c:
            c.popular()
            (_, _, _, first), (_, _, _, second) = server.requests
            self.assertGreaterEqual(second - first, 0.4)

    def test_other_errors_are_not_retried(self) -> None:
        for status in (400, 401, 404, 409, 413, 422, 500):
            answers: list[Answer] = [(status, FAST, error("no", status))]
            with Scripted(answers) as server, self.client(server) as c:
                with self.assertRaises(marquee.APIStatusError):
                    c.popular()
                self.assertEqual(len(server.requests), 1, status)

    def test_the_async_client_follows_the_same_rule(self) -> None:
        async def run(server: Scripted) -> None:
            async with marquee.AsyncClient(server.base_url, KEY, max_retries=3) as c:
                await c.embed("hello")
                with self.assertRaises(marquee.RateLimitError):
                    await c.chat("hi")
                with self.assertRaises(marquee.RateLimitError):
                    await c.popular()

        answers: list[Answer] = [
            (502, FAST, b""),
            (429, FAST, error("rate_limit_exceeded")),
            (200, {}, EMBEDDING),
            (429, FAST, error("rate_limit_exceeded")),
            (429, FAST, error("quota_exceeded")),
        ]
        with Scripted(answers) as server:
            asyncio.run(run(server))
            self.assertEqual(
                server.paths(),
                ["POST /v1/embeddings"] * 3 + ["POST /v1/chat/completions", "GET /v1/popular"],
            )

    def test_which_calls_may_be_repeated(self) -> None:
        for method in ("GET", "HEAD", "PUT", "PATCH", "DELETE"):
            self.assertTrue(may_repeat(Call(method, "/v1/anything")))
        for path in (
            "/v1/feedback",
            "/v1/items",
            "/v1/users",
            "/v1/recommend/session",
            "/v1/embeddings",
            "/v1/audio/speech",
            "/v1/audio/transcriptions",
            "/v1/images/classify",
        ):
            self.assertTrue(may_repeat(Call("POST", path)), path)
        for path in (
            "/v1/chat/completions",
            "/v1/models/train",
            "/v1/admin/tenants/t/keys",
            "/v1/keys/k/rotate",
            "/v1/experiments",
            "/v1/items/heat/copy",
            "/v1/anything-new",
        ):
            self.assertFalse(may_repeat(Call("POST", path)), path)
        self.assertFalse(may_repeat(Call("GET", "/v1/popular", idempotent=False)))

    def test_the_wait_is_never_shorter_and_jitter_is_bounded(self) -> None:
        for asked, most in [(0.0, 0.0), (1.0, 1.1), (2.0, 2.2), (10.0, 10.25), (60.0, 60.25)]:
            waits = [retry_wait(asked) for _ in range(200)]
            self.assertTrue(all(asked <= w <= most for w in waits), (asked, min(waits), max(waits)))


# ---------------------------------------------------------------------------------------------
# Bulk uploads: chunks cut by count and by size


class BulkSizeTest(unittest.TestCase):
    def test_large_elements_are_sent_in_chunks_under_the_byte_limit(self) -> None:
        big = "x" * (4 * 1024 * 1024)
        items = [{"id": f"big-{i}", "description": big} for i in range(3)]
        with Scripted([]) as server:
            with marquee.Client(server.base_url, KEY) as c:
                result = c.upsert_items(items)
            # 4 + 4 MiB (and the rest of the JSON) is over 8 MiB: one element per request.
            self.assertEqual(result["batches"], 3)
            self.assertEqual(server.paths(), ["POST /v1/items"] * 3)
            for i, (_, _, body, _) in enumerate(server.requests):
                self.assertLessEqual(len(body), DEFAULT_MAX_BATCH_BYTES)
                self.assertEqual([e["id"] for e in json.loads(body)], [f"big-{i}"])

    def test_a_small_limit_cuts_chunks_by_size_and_count(self) -> None:
        events = [{"user_id": f"u{i}", "item_id": "heat", "type": "view"} for i in range(10)]
        one = len(json.dumps(events[0], separators=(",", ":")))
        with Scripted([]) as server:
            # Room for three elements and their commas, not four.
            with marquee.Client(server.base_url, KEY, max_batch_bytes=2 + 3 * one + 2) as c:
                self.assertEqual(c.insert_feedback(events)["batches"], 4)
                sizes = [len(json.loads(body)) for _, _, body, _ in server.requests]
                self.assertEqual(sizes, [3, 3, 3, 1])
                server.requests.clear()
                # The count limit still applies, whichever comes first.
                self.assertEqual(c.insert_feedback(events, batch_size=2)["batches"], 5)
                server.requests.clear()
                # A generator is cut the same way, and the async client too.
                self.assertEqual(c.insert_feedback(iter(events))["batches"], 4)

            async def run() -> int:
                async def aevents() -> AsyncIterator[dict[str, str]]:
                    for e in events:
                        yield e

                async with marquee.AsyncClient(
                    server.base_url, KEY, max_batch_bytes=2 + 3 * one + 2
                ) as ac:
                    a = await ac.insert_feedback(events)
                    b = await ac.insert_feedback(aevents())
                    return a["batches"] + b["batches"]

            self.assertEqual(asyncio.run(run()), 8)
            sent = [e for _, _, body, _ in server.requests for e in json.loads(body)]
            self.assertEqual(sent, events * 3)

    def test_an_element_over_the_limit_alone_is_refused_before_sending(self) -> None:
        items = [{"id": "small"}, {"id": "huge", "description": "x" * 2000}]
        with Scripted([]) as server:
            with marquee.Client(server.base_url, KEY, max_batch_bytes=1000) as c:
                with self.assertRaisesRegex(ValueError, r"items\[1\] is \d+ bytes of JSON.*1000"):
                    c.upsert_items(items)
                self.assertEqual(server.requests, [], "a list is checked whole: nothing sent")
                # A generator sends the chunks completed before the element it cannot send.
                with self.assertRaisesRegex(ValueError, r"items\[2\]"):
                    c.upsert_items(iter([{"id": "a"}, *items]), batch_size=1)
                self.assertEqual([json.loads(b) for _, _, b, _ in server.requests], [[{"id": "a"}]])
            with self.assertRaisesRegex(ValueError, "max_batch_bytes must be at least"):
                marquee.Client(server.base_url, KEY, max_batch_bytes=1)


# ---------------------------------------------------------------------------------------------
# The package as installed


class InstalledPackageTest(unittest.TestCase):
    def test_the_installed_package_is_typed(self) -> None:
        package = Path(marquee.__file__).resolve().parent
        self.assertTrue((package / "py.typed").is_file(), f"no py.typed in {package}")


if __name__ == "__main__":
    unittest.main()
