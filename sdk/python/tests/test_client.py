"""``marquee.Client`` and the module-level functions against a real server (see _support)."""

from __future__ import annotations

import logging
import os
import threading
import time
import unittest
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import _support
import httpx
from _support import FILMS, VIEWS, create_key, requires_server, unique

import marquee


def ids(recommendations: list[marquee.Recommendation]) -> list[str]:
    return [r["item_id"] for r in recommendations]


class Counter:
    """Counts the answers an ``httpx.Client`` receives, by (method, path, status)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, response: httpx.Response) -> None:
        with self.lock:
            self.seen.append(
                (response.request.method, response.request.url.path, response.status_code)
            )

    def statuses(self, method: str, path: str) -> list[int]:
        return [s for m, p, s in self.seen if m == method and p == path]


@requires_server
class SpecificationFlowTest(unittest.TestCase):
    """The flow of the specification, on the default client configured from the environment."""

    def setUp(self) -> None:
        self.saved = os.environ.get("MARQUEE_USER_ID")
        os.environ["MARQUEE_USER_ID"] = "ann"

    def tearDown(self) -> None:
        if self.saved is None:
            os.environ.pop("MARQUEE_USER_ID", None)
        else:
            os.environ["MARQUEE_USER_ID"] = self.saved
        marquee.default_client().close()

    def test_get_user_data_then_recommend(self) -> None:
        import marquee as example_sdk
        from marquee import recommend

        user_data = example_sdk.get_user_data()
        self.assertEqual(user_data["user_id"], "ann")
        # Ann's latest view, her interests (Sci-Fi strongest) and history with titles.
        self.assertEqual(user_data["item_id"], "terminator")
        self.assertEqual(
            user_data["interests"][0], {"kind": "category", "name": "Sci-Fi", "weight": 0.5}
        )
        self.assertAlmostEqual(sum(i["weight"] for i in user_data["interests"]), 1.0, places=4)
        self.assertEqual(
            [(h["item_id"], h["title"]) for h in user_data["history"]],
            [(i, FILMS[i][0]) for i in reversed(VIEWS["ann"])],
        )
        recommendations = recommend(user_data["user_id"], user_data["item_id"])
        titles = [item["title"] for item in recommendations]
        self.assertTrue(titles)
        self.assertEqual(titles[0], "Terminator 2")
        for item in recommendations:
            self.assertEqual(item["title"], FILMS[item["item_id"]][0])
            self.assertNotIn(item["item_id"], VIEWS["ann"])

    def test_module_settings_override_the_environment(self) -> None:
        self.assertEqual(marquee.default_client().base_url, _support.BASE_URL.rstrip("/"))
        marquee.user_id = "cat"
        marquee.max_retries = 0
        try:
            self.assertEqual(marquee.get_user_data()["user_id"], "cat")
            self.assertEqual(marquee.default_client().max_retries, 0)
            marquee.api_key = "mq_sk_not_a_key"
            with self.assertRaises(marquee.AuthenticationError):
                marquee.popular()
        finally:
            marquee.user_id = None
            marquee.api_key = None
            marquee.max_retries = 2
        self.assertEqual(len(marquee.popular(n=2)), 2)


@requires_server
class RecommendTest(unittest.TestCase):
    def setUp(self) -> None:
        self.client = _support.client()

    def tearDown(self) -> None:
        self.client.close()

    def test_recommendations_are_titled_unseen_and_explained(self) -> None:
        recs = self.client.recommend("ann")
        self.assertEqual(ids(recs)[0], "t2")
        self.assertEqual(len({r["recommendation_id"] for r in recs}), 1)
        self.assertTrue(recs[0]["recommendation_id"].startswith("rec_"))
        for r in recs:
            self.assertEqual(r["title"], FILMS[r["item_id"]][0])
            self.assertEqual(r["categories"], FILMS[r["item_id"]][1])
            self.assertNotIn(r["item_id"], VIEWS["ann"])
            self.assertIsInstance(r["score"], float)
            self.assertTrue(r["reason"]["kind"] and r["reason"]["message"])
        self.assertEqual(recs[0]["reason"]["kind"], "because_you_engaged")
        self.assertEqual(len(self.client.recommend("ann", n=2)), 2)
        # Integer ids are sent as text.
        self.assertEqual(self.client.recommend("ann", n=1)[0]["item_id"], "t2")

    def test_in_the_context_of_an_item(self) -> None:
        recs = self.client.recommend("ann", "heat")
        self.assertEqual(recs[0]["item_id"], "casino")
        self.assertEqual(recs[0]["reason"]["kind"], "similar_to_context")
        self.assertNotIn("heat", ids(recs))

    def test_filters(self) -> None:
        c = self.client
        for r in c.recommend("ann", category="Comedy"):
            self.assertIn("Comedy", r["categories"])
        both = c.recommend("ann", category=["crime", "drama"], category_match="all")
        self.assertEqual(sorted(ids(both)), ["casino", "heat"])
        self.assertNotIn("t2", ids(c.recommend("ann", exclude=["t2"])))
        self.assertNotIn("t2", ids(c.recommend("ann", exclude="t2")))
        seen_too = ids(c.recommend("ann", n=8, exclude_seen=False))
        self.assertEqual(len(seen_too), 8)
        recent = c.recommend("ann", n=8, filter="year >= 1990")
        self.assertTrue(recent)
        self.assertTrue(set(ids(recent)) <= {"t2", "heat", "casino", "clueless", "amelie"})
        per_category = c.recommend("ann", n=8, max_per_category=1)
        first = [tuple(r["categories"][:1]) for r in per_category]
        self.assertEqual(len(first), len(set(first)))
        self.assertEqual(len(c.recommend("ann", n=5, diversity=0.5, exploration=0.2)), 5)

    def test_a_bad_filter_expression_is_a_422_naming_the_parameter(self) -> None:
        with self.assertRaises(marquee.UnprocessableEntityError) as caught:
            self.client.popular(filter="year >=")
        e = caught.exception
        self.assertEqual((e.status_code, e.code, e.param), (422, "invalid_request", "filter"))
        self.assertIn("ends too early", e.message)
        self.assertTrue(e.request_id)

    def test_similar_popular_trending_session(self) -> None:
        c = self.client
        similar = c.similar("alien")
        self.assertEqual(ids(similar)[0], "aliens")
        self.assertTrue(set(ids(similar)) <= {"aliens", "terminator", "t2"})
        self.assertEqual(similar[0]["reason"]["kind"], "similar_item")
        popular = c.popular(n=3)
        self.assertEqual(len(popular), 3)
        self.assertTrue(all(r["reason"]["kind"] == "popular" for r in popular))
        self.assertTrue(all(r["item_id"] in FILMS for r in c.trending()))
        session = c.session(["heat", "casino"], n=3)
        self.assertEqual(len(session), 3)
        self.assertFalse({"heat", "casino"} & set(ids(session)))
        self.assertNotIn(
            "amelie", ids(c.session(["heat"], exclude=["amelie"], category=["Comedy", "Romance"]))
        )

    def test_search_needs_an_embedding_model(self) -> None:
        if _support.MODELS:
            self.skipTest("the server has models")
        with self.assertRaises(marquee.InternalServerError) as caught:
            self.client.with_options(max_retries=0).search("a heist in Los Angeles")
        self.assertEqual(
            (caught.exception.status_code, caught.exception.code), (503, "unavailable")
        )


@requires_server
class CatalogueTest(unittest.TestCase):
    def setUp(self) -> None:
        self.client = _support.client()
        self.addCleanup(self.client.close)

    def delete_quietly(self, item_id: str) -> None:
        try:
            self.client.delete_item(item_id)
        except marquee.NotFoundError:
            pass

    def test_put_get_patch_delete(self) -> None:
        c = self.client
        item_id = unique("ronin")
        self.addCleanup(self.delete_quietly, item_id)
        put = c.put_item(
            item_id,
            title="Ronin",
            categories=["Action", "Thriller"],
            tags=["heist", "car chase"],
            description="Mercenaries chase a briefcase across France.",
            metadata={"year": 1998, "studio": {"name": "UA"}},
            published_at=datetime(1998, 9, 25, tzinfo=UTC),
            available_from=0,
        )
        self.assertEqual(put["id"], item_id)
        got = c.get_item(item_id)
        self.assertEqual(got, put)
        self.assertEqual(got["published_at"], "1998-09-25T00:00:00Z")
        self.assertEqual(got["available_from"], "1970-01-01T00:00:00Z")
        self.assertEqual(got["metadata"], {"year": 1998, "studio": {"name": "UA"}})
        self.assertFalse(got["hidden"])
        patched = c.patch_item(item_id, title="Ronin (1998)", description=None)
        self.assertEqual(patched["title"], "Ronin (1998)")
        self.assertIsNone(patched["description"])
        self.assertEqual(patched["tags"], ["heist", "car chase"])
        c.delete_item(item_id)
        with self.assertRaises(marquee.NotFoundError) as caught:
            c.get_item(item_id)
        self.assertEqual((caught.exception.status, caught.exception.code), (404, "not_found"))

    def test_ids_with_any_character_round_trip(self) -> None:
        for item_id in [unique("a/b c?d#e&f=g"), unique("Amélie ✓ 100%"), unique("..")]:
            self.addCleanup(self.delete_quietly, item_id)
            self.client.put_item(item_id, title=item_id)
            self.assertEqual(self.client.get_item(item_id)["title"], item_id)
            self.client.delete_item(item_id)

    def test_a_hidden_item_is_never_served(self) -> None:
        category = unique("Western")
        item_id = unique("unforgiven")
        self.addCleanup(self.delete_quietly, item_id)
        self.client.put_item(item_id, title="Unforgiven", categories=[category])
        self.assertEqual(ids(self.client.recommend("ann", category=category)), [item_id])
        self.client.patch_item(item_id, hidden=True)
        self.assertEqual(self.client.recommend("ann", category=category), [])

    def test_pages_and_iteration(self) -> None:
        everything = self.client.list_items(limit=1000)
        self.assertIsNone(everything["next_cursor"])
        all_ids = [i["id"] for i in everything["items"]]
        self.assertTrue(set(FILMS) <= set(all_ids))
        first = self.client.list_items(limit=3)
        self.assertEqual(len(first["items"]), 3)
        self.assertIsNotNone(first["next_cursor"])
        iterated = [i["id"] for i in self.client.iter_items(page_size=3)]
        self.assertEqual(sorted(iterated), sorted(all_ids))
        self.assertEqual(len(iterated), len(set(iterated)))

    def test_bulk_upserts_are_chunked_and_counted(self) -> None:
        prefix = unique("bulk")
        items: list[marquee.ItemInput] = [
            {
                "id": f"{prefix}-{n}",
                "title": f"Film {n}",
                "categories": ["Bulk"],
                "published_at": 1_700_000_000 + n,
            }
            for n in range(7)
        ]
        # Out of the catalogue again afterwards, even if the test fails: other tests expect the
        # eight films only.
        for n in range(7):
            self.addCleanup(self.delete_quietly, f"{prefix}-{n}")
        for n in range(5):
            self.addCleanup(self.delete_quietly, f"{prefix}-g{n}")
        sent = Counter()
        with httpx.Client(event_hooks={"response": [sent]}) as http:
            client = _support.client(http_client=http, batch_size=3)
            self.assertEqual(client.upsert_items(items), {"count": 7, "batches": 3})
            self.assertEqual(sent.statuses("POST", "/v1/items"), [200, 200, 200])
            # A generator goes through in chunks too; `batch_size` per call.
            more: Iterator[marquee.ItemInput] = (
                {"id": f"{prefix}-g{n}", "title": f"More {n}"} for n in range(5)
            )
            self.assertEqual(client.upsert_items(more, batch_size=2), {"count": 5, "batches": 3})
            self.assertEqual(client.upsert_items([]), {"count": 0, "batches": 0})
        self.assertEqual(
            self.client.get_item(f"{prefix}-6")["published_at"], "2023-11-14T22:13:26Z"
        )
        self.assertEqual(self.client.get_item(f"{prefix}-g4")["title"], "More 4")
        users: list[marquee.UserInput] = [
            {"id": f"{prefix}-u{n}", "attributes": {"n": n}} for n in range(4)
        ]
        self.assertEqual(self.client.upsert_users(users, batch_size=3), {"count": 4, "batches": 2})
        self.assertEqual(self.client.get_user(f"{prefix}-u3")["attributes"], {"n": 3})


@requires_server
class UsersAndFeedbackTest(unittest.TestCase):
    def setUp(self) -> None:
        self.client = _support.client()

    def tearDown(self) -> None:
        self.client.close()

    def test_user_attributes(self) -> None:
        user = unique("zoe")
        self.assertEqual(
            self.client.put_user(user, {"plan": "premium", "age": 31})["attributes"],
            {"plan": "premium", "age": 31},
        )
        patched = self.client.patch_user(user, {"country": "FR", "age": None})
        self.assertEqual(patched["attributes"], {"plan": "premium", "country": "FR"})
        self.assertEqual(self.client.get_user(user), patched)
        listed = {u["id"] for u in self.client.iter_users(page_size=2)}
        self.assertTrue({user, *VIEWS} <= listed)

    def test_feedback_changes_the_next_recommendations_at_once(self) -> None:
        user = unique("newcomer")
        self.assertEqual(self.client.add_feedback(user, "heat", "view"), 1)
        self.assertEqual(self.client.recommend(user)[0]["item_id"], "casino")
        self.client.add_feedback(
            user,
            "casino",
            "rating",
            value=4.5,
            timestamp=datetime(2024, 5, 1, 20, tzinfo=UTC),
        )
        events = self.client.user_feedback(user)
        self.assertEqual(
            sorted((e["item_id"], e["type"], e["value"]) for e in events),
            [("casino", "rating", 4.5), ("heat", "view", None)],
        )
        rated = next(e for e in events if e["type"] == "rating")
        self.assertEqual(rated["timestamp"], "2024-05-01T20:00:00Z")
        profile = self.client.get_user_data(user)
        self.assertEqual({h["title"] for h in profile["history"]}, {"Heat", "Casino"})
        self.assertEqual(profile["interests"][0]["kind"], "category")
        self.assertEqual({i["name"] for i in profile["interests"]}, {"Crime", "Drama"})
        # The client's user when none is given.
        with _support.client(user_id=user) as own:
            self.assertEqual(own.get_user_data()["user_id"], user)

    def test_feedback_batches_are_chunked_and_safe_to_resend(self) -> None:
        user = unique("binge")
        # A Sci-Fi fan, like ann and bob: the tests' feedback keeps the catalogue's three
        # groups of films apart, so that other tests can rely on them.
        watched = [
            ("alien", "view"),
            ("aliens", "view"),
            ("t2", "view"),
            ("terminator", "view"),
            ("alien", "like"),
        ]
        events: list[marquee.FeedbackInput] = [
            {"user_id": user, "item_id": item, "type": kind, "timestamp": 1_700_000_000 + n}
            for n, (item, kind) in enumerate(watched)
        ]
        self.assertEqual(
            self.client.insert_feedback(events, batch_size=2), {"count": 5, "batches": 3}
        )
        self.assertEqual(self.client.insert_feedback(events), {"count": 5, "batches": 1})
        self.assertEqual(len(self.client.user_feedback(user)), 5, "keyed by (user, item, type)")
        self.assertEqual(len(self.client.user_feedback(user, limit=2)), 2)

    def test_a_failed_chunk_says_where_to_resume(self) -> None:
        user = unique("partial")
        events: list[marquee.FeedbackInput] = [
            {"user_id": user, "item_id": item, "type": "view"}
            for item in ["alien", "aliens", "t2", "no-such-film", "heat"]
        ]
        with self.assertRaises(marquee.UnprocessableEntityError) as caught:
            self.client.insert_feedback(events, batch_size=2)
        e = caught.exception
        self.assertEqual(e.code, "invalid_batch")
        self.assertEqual(e.batch_offset, 2)
        self.assertIn("element 1 of the batch", e.message)
        # The first chunk was committed; the failing chunk was refused whole; the rest unsent.
        self.assertEqual(
            {f["item_id"] for f in self.client.user_feedback(user)}, {"alien", "aliens"}
        )

    def test_export_and_erasure(self) -> None:
        user = unique("leaving")
        self.client.put_user(user, {"email": "leaving@example.com"})
        self.client.insert_feedback(
            [{"user_id": user, "item_id": i, "type": "view"} for i in ["heat", "amelie"]]
        )
        export = self.client.export_user(user)
        self.assertEqual(export["user_id"], user)
        self.assertEqual(export["attributes"], {"email": "leaving@example.com"})
        self.assertEqual(sorted(f["item_id"] for f in export["feedback"]), ["amelie", "heat"])
        erased = self.client.delete_user(user)
        self.assertEqual((erased["user_id"], erased["events_deleted"]), (user, 2))
        with self.assertRaises(marquee.NotFoundError):
            self.client.get_user_data(user)
        with self.assertRaises(marquee.NotFoundError):
            self.client.get_user(user)


@requires_server
class UsageTest(unittest.TestCase):
    def test_usage_counts_each_recommendation_and_the_invoice_sums_them(self) -> None:
        # A key of its own: its line of the report holds exactly the calls made here.
        key, key_id = _support.create_key_with_id({"kind": "secret"})
        with _support.client(api_key=key) as c:
            c.popular()
            c.recommend("ann")
            c.get_item("heat")  # not a billable call
            lines = c.usage(group_by="key")["data"]
            mine = next(line for line in lines if line.get("group") == key_id)
            self.assertEqual(mine["requests"], 2)
            self.assertEqual(mine["units"], {"recommendations": 2})
            self.assertIsInstance(mine["cost"], str)
            total = c.usage()["total"]
            self.assertGreaterEqual(total["units"]["recommendations"], 2)
            by_route = c.usage(group_by="route", start=datetime(2000, 1, 1))
            self.assertTrue(any("popular" in line.get("group", "") for line in by_route["data"]))
            today = datetime.now(UTC)
            invoice = c.invoice(date(today.year, today.month, 1))
            self.assertEqual(invoice["period"], f"{today.year:04d}-{today.month:02d}")
            self.assertEqual(invoice["status"], "open")
            self.assertEqual(
                invoice["requests"], sum(line["requests"] for line in invoice["lines"])
            )
            self.assertEqual(invoice["requests"], total["requests"])


@requires_server
class ErrorsTest(unittest.TestCase):
    def test_status_classes_carry_the_servers_code_and_message(self) -> None:
        with (
            self.assertRaises(marquee.AuthenticationError) as caught,
            _support.client(api_key="mq_sk_not_a_real_key") as wrong,
        ):
            wrong.popular()
        self.assertEqual(
            (caught.exception.status_code, caught.exception.code), (401, "unauthorized")
        )
        self.assertNotIn("not_a_real_key", str(caught.exception) + repr(caught.exception))

        publishable = _support.client(api_key=_support.PUBLISHABLE_KEY)
        self.addCleanup(publishable.close)
        with self.assertRaises(marquee.PermissionDeniedError) as denied:
            publishable.get_item("heat")
        self.assertEqual((denied.exception.status, denied.exception.code), (403, "missing_scope"))
        self.assertIn("catalog:read", denied.exception.message)
        # What a publishable key may do: recommend and send feedback.
        self.assertEqual(ids(publishable.recommend("ann", n=1)), ["t2"])
        self.assertEqual(publishable.add_feedback(unique("web"), "amelie", "click"), 1)

        with self.assertRaises(marquee.NotFoundError) as missing, _support.client() as c:
            c.similar("no-such-film")
        self.assertEqual(missing.exception.code, "not_found")
        self.assertIsInstance(missing.exception, marquee.APIStatusError)
        self.assertIsInstance(missing.exception, marquee.APIError)
        self.assertIsInstance(missing.exception, marquee.MarqueeError)

    def test_model_calls_name_what_is_missing(self) -> None:
        if _support.MODELS:
            self.skipTest("the server has models")
        sent = Counter()
        with httpx.Client(event_hooks={"response": [sent]}) as http:
            c = _support.client(http_client=http)
            with self.assertRaises(marquee.NotFoundError) as chat:
                c.chat("hello")
            self.assertEqual(chat.exception.code, "model_not_found")
            self.assertIn("smollm2-135m-instruct", chat.exception.message)
            with self.assertRaises(marquee.NotFoundError) as speech:
                c.speech("hello")
            self.assertEqual(speech.exception.code, "model_not_found")
            with self.assertRaises(marquee.NotFoundError):
                c.transcribe(_support.SAMPLES / "speech_hibari_16k.wav")
            c0 = c.with_options(max_retries=0)
            with self.assertRaises(marquee.InternalServerError) as embed:
                c0.embed("hello")
            self.assertEqual(
                (embed.exception.status_code, embed.exception.code), (503, "model_unavailable")
            )
            with self.assertRaises(marquee.InternalServerError) as vision:
                c0.classify_image(_support.SAMPLES / "chelsea.png")
            self.assertEqual(vision.exception.code, "model_unavailable")
            # A 503 without Retry-After is retried (with backoff) for a call safe to repeat.
            with self.assertRaises(marquee.InternalServerError):
                c.with_options(max_retries=1).embed("hello")
        self.assertEqual(sent.statuses("POST", "/v1/chat/completions"), [404])
        self.assertEqual(sent.statuses("POST", "/v1/embeddings"), [503, 503, 503])


@requires_server
class RetryTest(unittest.TestCase):
    """Retries against the server's real limits: a key allowed one request per second, and a
    key whose quota is one recommendation. Two calls in a row exceed the rate limit unless the
    first took over a second; the tests repeat until it happened, so a slow machine does not
    make them pass vacuously or fail."""

    limited: str
    quota: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.limited = create_key({"kind": "secret", "limits": {"requests_per_second": 1}})
        cls.quota = create_key({"kind": "secret", "quotas": {"recommendations": 1}})

    def client(self, key: str, **kwargs: Any) -> tuple[marquee.Client, Counter]:
        sent = Counter()
        http = httpx.Client(event_hooks={"response": [sent]})
        self.addCleanup(http.close)
        return _support.client(api_key=key, http_client=http, **kwargs), sent

    def test_a_429_is_retried_after_retry_after_and_succeeds(self) -> None:
        c, sent = self.client(self.limited)
        with self.assertLogs("marquee", logging.INFO) as logs:
            for _ in range(5):
                started = time.monotonic()
                self.assertEqual(len(c.popular(n=2)), 2)
                elapsed = time.monotonic() - started
                if 429 in sent.statuses("GET", "/v1/popular"):
                    break
        statuses = sent.statuses("GET", "/v1/popular")
        self.assertIn(429, statuses, "the limit was reached")
        self.assertEqual(statuses[-2:], [429, 200], "retried, then answered")
        self.assertGreaterEqual(elapsed, 0.5, "it waited as Retry-After said")
        self.assertTrue(
            any(
                "Retrying GET /v1/popular" in line and "429 rate_limit_exceeded" in line
                for line in logs.output
            ),
            logs.output,
        )
        self.assertFalse(
            any(self.limited in line for line in logs.output), "the key is never logged"
        )

    def test_without_retries_the_429_is_raised_with_retry_after(self) -> None:
        c, sent = self.client(self.limited, max_retries=0)
        caught: marquee.RateLimitError | None = None
        for _ in range(6):
            try:
                c.popular()
            except marquee.RateLimitError as e:
                caught = e
                break
        assert caught is not None, "the limit was reached"
        self.assertEqual((caught.status_code, caught.code), (429, "rate_limit_exceeded"))
        self.assertTrue(0 < (caught.retry_after or 0) <= 1, caught.retry_after)
        self.assertEqual(caught.response.headers["x-ratelimit-limit-requests"], "1")
        self.assertEqual(sent.statuses("GET", "/v1/popular")[-1], 429, "sent once")

    def test_idempotent_posts_are_retried_and_chat_is_not(self) -> None:
        c, sent = self.client(self.limited)
        user = unique("retried")
        events: list[marquee.FeedbackInput] = [{"user_id": user, "item_id": "heat", "type": "view"}]
        for _ in range(5):
            c.popular()
            self.assertEqual(c.insert_feedback(events), {"count": 1, "batches": 1})
            if 429 in sent.statuses("POST", "/v1/feedback"):
                break
        self.assertEqual(sent.statuses("POST", "/v1/feedback")[-2:], [429, 200])
        chats = 0
        for _ in range(5):
            c.popular()
            chats += 1
            try:
                c.chat("hello", max_tokens=1)
            except marquee.RateLimitError:
                break
            except marquee.NotFoundError:
                pass  # the token came back in between; no model here
        else:
            self.fail("the limit was never reached")
        statuses = sent.statuses("POST", "/v1/chat/completions")
        self.assertEqual(len(statuses), chats, "each chat sent once")
        self.assertEqual(statuses[-1], 429)

    def test_an_exhausted_quota_is_raised_at_once(self) -> None:
        c, sent = self.client(self.quota)
        c.popular()
        started = time.monotonic()
        with self.assertRaises(marquee.RateLimitError) as caught:
            c.popular()
        # A retry would have waited for the next billing period (Retry-After > 60 s).
        self.assertLess(time.monotonic() - started, 30)
        self.assertEqual(caught.exception.code, "quota_exceeded")
        self.assertGreater(caught.exception.retry_after or 0, 60)
        self.assertEqual(sent.statuses("GET", "/v1/popular"), [200, 429])


if __name__ == "__main__":
    unittest.main()
