// Chunked uploads (sendFeedback, upsertItems, upsertUsers) are cut by count and by size: a chunk
// never carries more than `maxBatchBytes` of JSON (the server refuses bodies over 10 MiB with 413),
// and an element too large to send even alone throws before anything is sent. Offline: a mock
// fetch records what would have been sent.

import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_MAX_BATCH_BYTES, Marquee } from "../dist/index.js";

function recorder(options = {}) {
  const bodies = [];
  const fetch = async (url, init) => {
    bodies.push(init.body);
    const n = JSON.parse(init.body).length;
    const field = new URL(url).pathname === "/v1/feedback" ? "accepted" : "upserted";
    return new Response(JSON.stringify({ [field]: n }), { headers: { "content-type": "application/json" } });
  };
  const m = new Marquee({ baseUrl: "http://marquee.test", apiKey: "mq_sk_x", fetch, ...options });
  return { m, bodies };
}

const bytes = (text) => new TextEncoder().encode(text).length;

test("three elements of 4 MiB go in three requests under the default 8 MiB", async () => {
  assert.equal(DEFAULT_MAX_BATCH_BYTES, 8 * 1024 * 1024);
  const big = "x".repeat(4 * 1024 * 1024);
  const items = [0, 1, 2].map((i) => ({ id: `big-${i}`, description: big }));
  const { m, bodies } = recorder();
  assert.deepEqual(await m.upsertItems(items), { upserted: 3 });
  assert.equal(bodies.length, 3);
  bodies.forEach((body, i) => {
    assert.ok(bytes(body) <= DEFAULT_MAX_BATCH_BYTES, `${bytes(body)} bytes`);
    assert.deepEqual(
      JSON.parse(body).map((e) => e.id),
      [`big-${i}`],
    );
  });
});

test("a small limit cuts chunks by size, the count limit still applies, bytes count as UTF-8", async () => {
  const events = Array.from({ length: 10 }, (_, i) => ({ user_id: `u${i}`, item_id: "heat", type: "view" }));
  const one = JSON.stringify(events[0]).length;
  const limit = 2 + 3 * one + 2; // three elements and their commas, not four
  const { m, bodies } = recorder({ maxBatchBytes: limit });
  assert.deepEqual(await m.sendFeedback(events), { accepted: 10 });
  assert.deepEqual(
    bodies.map((b) => JSON.parse(b).length),
    [3, 3, 3, 1],
  );
  assert.ok(bodies.every((b) => bytes(b) <= limit));
  assert.deepEqual(bodies.flatMap((b) => JSON.parse(b)), events);
  bodies.length = 0;
  assert.deepEqual(await m.sendFeedback(events, { chunkSize: 2 }), { accepted: 10 });
  assert.equal(bodies.length, 5);
  bodies.length = 0;
  // A per-call limit overrides the client's.
  assert.deepEqual(await m.sendFeedback(events, { maxBatchBytes: 1_000_000 }), { accepted: 10 });
  assert.equal(bodies.length, 1);
  bodies.length = 0;
  // "é" is two bytes, "😀" four: the limit is on bytes, not UTF-16 units.
  const users = Array.from({ length: 4 }, (_, i) => ({ id: `u${i}`, attributes: { name: "é😀".repeat(10) } }));
  const size = bytes(JSON.stringify(users[0]));
  const r = recorder({ maxBatchBytes: 2 + 2 * size + 1 });
  assert.deepEqual(await r.m.upsertUsers(users), { upserted: 4 });
  assert.deepEqual(
    r.bodies.map((b) => JSON.parse(b).length),
    [2, 2],
  );
  assert.ok(r.bodies.every((b) => bytes(b) <= 2 + 2 * size + 1));
});

test("an element over the limit alone throws before anything is sent", async () => {
  const { m, bodies } = recorder({ maxBatchBytes: 1000 });
  const items = [{ id: "small" }, { id: "huge", description: "x".repeat(2000) }];
  await assert.rejects(m.upsertItems(items), /items\[1\] is \d+ bytes of JSON.*1000/);
  await assert.rejects(
    m.sendFeedback({ user_id: "ann", item_id: "heat", type: "x".repeat(2000) }),
    (e) => e instanceof RangeError && /^event is \d+ bytes/.test(e.message),
  );
  assert.deepEqual(bodies, [], "nothing sent");
  assert.throws(() => new Marquee({ baseUrl: "http://x", apiKey: "k", maxBatchBytes: 1 }), /maxBatchBytes/);
  await assert.rejects(m.upsertItems([{ id: "a" }], { maxBatchBytes: 0 }), /maxBatchBytes/);
});
