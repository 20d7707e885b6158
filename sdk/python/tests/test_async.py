"""``marquee.AsyncClient`` against a real server (see _support)."""

from __future__ import annotations

import asyncio
import logging
import time
import unittest
from collections.abc import AsyncIterator

import _support
from _support import FILMS, VIEWS, create_key, requires_server, unique

import marquee


def async_client(**kwargs: object) -> marquee.AsyncClient:
    kwargs.setdefault("base_url", _support.BASE_URL)
    kwargs.setdefault("api_key", _support.API_KEY)
    return marquee.AsyncClient(**kwargs)  # type: ignore[arg-type]


@requires_server
class AsyncClientTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        # The test runner's debug mode reports callbacks over 0.1 s; creating an httpx client
        # (its TLS context) takes about that.
        asyncio.get_running_loop().slow_callback_duration = 1.0
        self.client = async_client()
        self.addAsyncCleanup(self.client.close)

    async def test_the_flow_and_the_same_answers_as_the_blocking_client(self) -> None:
        user_data = await self.client.get_user_data("ann")
        self.assertEqual(user_data["item_id"], "terminator")
        recs = await self.client.recommend(user_data["user_id"], user_data["item_id"])
        with _support.client() as blocking:
            same = blocking.recommend("ann", "terminator")
        self.assertEqual([r["item_id"] for r in recs], [r["item_id"] for r in same])
        self.assertEqual(recs[0]["title"], "Terminator 2")

    async def test_calls_run_concurrently(self) -> None:
        popular, similar, item, profile, session = await asyncio.gather(
            self.client.popular(n=3),
            self.client.similar("heat", n=2),
            self.client.get_item("amelie"),
            self.client.profile("cat", history=1),
            self.client.session(["alien"], n=2),
        )
        self.assertEqual(len(popular), 3)
        self.assertEqual(similar[0]["item_id"], "casino")
        self.assertEqual(item["title"], "Amélie")
        self.assertEqual([h["item_id"] for h in profile["history"]], [VIEWS["cat"][-1]])
        self.assertEqual(len(session), 2)

    async def test_bulk_from_an_async_generator_and_paging(self) -> None:
        prefix = unique("async")

        async def items() -> AsyncIterator[marquee.ItemInput]:
            for n in range(5):
                await asyncio.sleep(0)
                yield {"id": f"{prefix}-{n}", "title": f"Async {n}", "categories": ["Async"]}

        self.addAsyncCleanup(self.delete_items, [f"{prefix}-{n}" for n in range(5)])
        self.assertEqual(
            await self.client.upsert_items(items(), batch_size=2), {"count": 5, "batches": 3}
        )
        events: list[marquee.FeedbackInput] = [
            {"user_id": prefix, "item_id": f"{prefix}-{n}", "type": "like"} for n in range(5)
        ]
        self.assertEqual(
            await self.client.insert_feedback(events, batch_size=4), {"count": 5, "batches": 2}
        )
        self.assertEqual(len(await self.client.user_feedback(prefix)), 5)
        seen = [item["id"] async for item in self.client.iter_items(page_size=4)]
        self.assertTrue({f"{prefix}-{n}" for n in range(5)} | set(FILMS) <= set(seen))
        users = [u["id"] async for u in self.client.iter_users(page_size=3)]
        self.assertIn(prefix, users)
        erased = await self.client.delete_user(prefix)
        self.assertEqual(erased["events_deleted"], 5)

    async def delete_items(self, item_ids: list[str]) -> None:
        for item_id in item_ids:
            try:
                await self.client.delete_item(item_id)
            except marquee.NotFoundError:
                pass

    async def test_errors(self) -> None:
        with self.assertRaises(marquee.NotFoundError):
            await self.client.get_item("no-such-film")
        async with async_client(api_key="mq_sk_wrong") as wrong:
            with self.assertRaises(marquee.AuthenticationError):
                await wrong.popular()
        with self.assertRaises(ValueError):
            await self.client.recommend("ann", n=0)
        if not _support.MODELS:
            with self.assertRaises(marquee.NotFoundError) as caught:
                await self.client.chat("hello", stream=True)
            self.assertEqual(caught.exception.code, "model_not_found")

    async def test_a_429_is_retried(self) -> None:
        key = create_key({"kind": "secret", "limits": {"requests_per_second": 1}})
        async with async_client(api_key=key) as c:
            await c.popular()
            started = time.monotonic()
            with self.assertLogs("marquee", logging.INFO) as logs:
                self.assertEqual(len(await c.popular(n=1)), 1)
            self.assertGreaterEqual(time.monotonic() - started, 0.5)
            self.assertTrue(any("Retrying GET /v1/popular" in line for line in logs.output))
            with self.assertRaises(marquee.RateLimitError):
                await c.with_options(max_retries=0).popular()


if __name__ == "__main__":
    unittest.main()
