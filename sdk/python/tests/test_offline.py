"""What the SDK does without a server: the event-stream parser on a stream captured from
Marquee, argument checks (nothing is sent), key hygiene, errors of unreachable or silent
servers, and the retry timing rules."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import threading
import time
import unittest
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _support  # noqa: F401  (puts the tree's package first on the path)
import httpx

import marquee
from marquee._base import BACKOFF_MAX, backoff
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
                client.chat("hi")  # not idempotent, but nothing was sent: retried
        self.assertNotIsInstance(caught.exception, marquee.APITimeoutError)
        self.assertEqual(
            len([r for r in logs.output if "Retrying POST /v1/chat/completions" in r]), 2
        )
        self.assertGreater(time.monotonic() - started, 2 * 0.375 * 0.9)
        self.assertFalse(any(KEY in line for line in logs.output))

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


if __name__ == "__main__":
    unittest.main()
