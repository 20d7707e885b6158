// The client against a real Marquee server with a secret key: recommendations on the fixture
// catalogue, profiles, catalogue/users/feedback round trips, chunked uploads, pagination, usage
// and invoices, and how the server's errors surface. Tests that write use ids of their own (with
// the run's suffix) and a category of their own, so the fixture's expectations hold.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { AuthenticationError, Marquee, MarqueeError, NotFoundError, UnprocessableEntityError } from "../dist/index.js";
import { client, env, recordingFetch, run } from "./helpers.js";

const fixtures = JSON.parse(readFileSync(new URL("./fixtures.json", import.meta.url), "utf8"));
const catalogue = new Map(fixtures.items.map((i) => [i.id, i]));
const ids = (list) => list.map((r) => r.item_id);

function assertList(list, n) {
  assert.ok(Array.isArray(list));
  assert.ok(list.length > 0 && list.length <= n, `1..${n} items, got ${list.length}`);
  const recId = list[0].recommendation_id;
  assert.match(recId, /^rec_/);
  for (const r of list) {
    assert.equal(typeof r.score, "number");
    assert.equal(r.recommendation_id, recId, "one recommendation_id per list");
    assert.equal(typeof r.reason.kind, "string");
    assert.equal(typeof r.reason.message, "string");
    assert.ok(Array.isArray(r.categories));
  }
}

test("recommend: the fixture user's list leaves out what she saw and ranks co-watched films first", async () => {
  const m = client();
  const recs = await m.recommend("ann");
  assertList(recs, 10);
  assert.ok(!ids(recs).includes("heat") && !ids(recs).includes("casino"), "seen items are excluded by default");
  assert.equal(recs[0].item_id, "goodfellas", "liked with both of her films by bob and eve");
  assert.equal(recs[0].title, "Goodfellas");
  assert.deepEqual(recs[0].categories, ["Crime", "Drama"]);
  assert.equal(recs[0].reason.kind, "because_you_engaged");
  assert.equal(recs[0].variant, null);
  for (let i = 1; i < recs.length; i++) assert.ok(recs[i - 1].score >= recs[i].score, "best first");

  const three = await m.recommend("ann", { n: 3 });
  assert.equal(three.length, 3);
  assert.deepEqual(ids(three), ids(recs).slice(0, 3));
});

test("recommend: filters reach the server with its names and do what they say", async () => {
  const m = client();
  const crime = await m.recommend("ann", { category: "Crime", excludeSeen: false, n: 10 });
  assert.deepEqual(new Set(ids(crime)), new Set(["heat", "casino", "goodfellas"]));
  const either = await m.recommend("ann", { category: ["animation", "Horror"], n: 10 });
  assert.ok(either.length > 0);
  for (const r of either) {
    assert.ok(
      r.categories.some((c) => ["Animation", "Horror"].includes(c)),
      `${r.item_id} is in neither category`,
    );
  }
  const both = await m.recommend("ann", { category: "Comedy,Romance", categoryMatch: "all", n: 10 });
  assert.deepEqual(ids(both), ["amelie"]);
  const recent = await m.recommend("ann", { filter: "year >= 2000", n: 10 });
  assert.deepEqual(new Set(ids(recent)), new Set(["up", "arrival", "amelie"]));
  for (const r of recent) assert.ok(catalogue.get(r.item_id).metadata.year >= 2000);
  const excluded = await m.recommend("ann", { exclude: ["goodfellas", "alien"], n: 10 });
  assert.ok(!ids(excluded).includes("goodfellas") && !ids(excluded).includes("alien"));
  const varied = await m.recommend("ann", { maxPerCategory: 1, n: 10 });
  const primaries = varied.map((r) => r.categories[0]);
  assert.equal(new Set(primaries).size, primaries.length, "at most one per primary category");
  const explored = await m.recommend("ann", { exploration: 0.5, diversity: 0.3, n: 4 });
  assertList(explored, 4);
});

test("recommend in the context of an item, similar items, popular, trending and session", async () => {
  const m = client();
  const after = await m.recommend("ann", { itemId: "heat", n: 3 });
  assertList(after, 3);
  assert.equal(after[0].reason.kind, "similar_to_context");
  assert.deepEqual(after[0].reason.items, ["heat"]);
  assert.ok(!ids(after).includes("heat"));

  const similar = await m.similar("heat", { n: 3 });
  assertList(similar, 3);
  assert.ok(!ids(similar).includes("heat"));
  assert.deepEqual(new Set(ids(similar).slice(0, 2)), new Set(["casino", "goodfellas"]));
  assert.equal(similar[0].reason.kind, "similar_item");

  const popular = await m.popular({ n: 3 });
  assert.equal(popular[0].item_id, "heat", "four people engaged with Heat");
  assert.equal(popular[0].reason.kind, "popular");
  const comedies = await m.popular({ category: "Comedy", n: 5 });
  assert.ok(comedies.every((r) => r.categories.includes("Comedy")));

  const trending = await m.trending({ n: 3 });
  assertList(trending, 3);
  assert.equal(trending[0].item_id, "heat");
  assert.equal(trending[0].reason.kind, "trending");

  const session = await m.session(["up"], { n: 3 });
  assertList(session, 3);
  assert.equal(session[0].item_id, "toy-story", "liked with Up by cat and fay");
  assert.ok(!ids(session).includes("up"));
  const sessionCrime = await m.session(["up"], { category: ["Crime"], n: 5 });
  assert.ok(sessionCrime.every((r) => r.categories.includes("Crime")));
});

test("getUserData: latest item, weighted interests and titled history", async () => {
  const m = client();
  const user = await m.getUserData("ann");
  assert.equal(user.user_id, "ann");
  assert.equal(user.item_id, "casino", "her most recent engagement");
  assert.deepEqual(user.interests[0], { kind: "category", name: "Crime", weight: user.interests[0].weight });
  const total = user.interests.reduce((s, i) => s + i.weight, 0);
  assert.ok(Math.abs(total - 1) < 1e-4, `weights sum to 1, got ${total}`);
  assert.deepEqual(
    user.history.map((h) => [h.item_id, h.title, h.type]),
    [
      ["casino", "Casino", "like"],
      ["heat", "Heat", "view"],
    ],
  );
  assert.ok(!Number.isNaN(Date.parse(user.history[0].timestamp)));
  const short = await m.getUserData("ann", { history: 1 });
  assert.equal(short.history.length, 1);
  // The specification's flow: the profile's user and item feed recommend().
  const recs = await m.recommend(user.user_id, { itemId: user.item_id });
  assert.ok(recs.length > 0 && recs.every((r) => typeof r.title === "string"));
});

test("items: put, get, patch, hide, list and delete, with ids that need encoding", async (t) => {
  const m = client();
  const id = `crud/${run} é ✓?#&%`;
  t.after(() => m.deleteItem(id).catch(() => {}));
  const category = `SDK-Test-${run}`;
  const put = await m.putItem(id, {
    title: "Test Film",
    categories: [category],
    tags: ["t"],
    description: "A film made by a test",
    metadata: { year: 2024, studio: { name: "Tests" } },
    published_at: new Date("2024-05-01T20:00:00Z"),
  });
  assert.equal(put.id, id);
  assert.equal(put.published_at, "2024-05-01T20:00:00Z");
  assert.deepEqual(put.metadata, { year: 2024, studio: { name: "Tests" } });
  assert.equal(put.hidden, false);
  assert.deepEqual(await m.getItem(id), put);

  const patched = await m.patchItem(id, { title: "Renamed", description: null });
  assert.equal(patched.title, "Renamed");
  assert.equal(patched.description, null);
  assert.deepEqual(patched.categories, [category], "fields not given are kept");

  // A new item is recommendable at once through its category; hidden, it is not.
  const before = await m.recommend(`nobody-${run}`, { category, n: 5 });
  assert.deepEqual(ids(before), [id]);
  await m.patchItem(id, { hidden: true });
  assert.deepEqual(await m.recommend(`nobody-${run}`, { category, n: 5 }), []);

  await m.deleteItem(id);
  await assert.rejects(m.getItem(id), (e) => e instanceof NotFoundError && e.status === 404 && e.code === "not_found");
});

test("upsertItems sends chunks and iterItems follows cursors through the whole catalogue", async (t) => {
  const { fetch, calls } = recordingFetch();
  const m = client({ fetch });
  const category = `SDK-Batch-${run}`;
  const batch = Array.from({ length: 5 }, (_, i) => ({
    id: `batch-${run}-${i}`,
    title: `Batch ${i}`,
    categories: [category],
  }));
  t.after(async () => {
    for (const b of batch) await m.deleteItem(b.id).catch(() => {});
  });
  assert.deepEqual(await m.upsertItems(batch, { chunkSize: 2 }), { upserted: 5 });
  const posts = calls.filter((c) => c.method === "POST");
  assert.equal(posts.length, 3, "5 items in chunks of 2");
  assert.ok(posts.every((c) => c.url.endsWith("/v1/items") && c.status === 200));

  const page = await m.listItems({ limit: 2 });
  assert.equal(page.items.length, 2);
  assert.equal(typeof page.next_cursor, "string");
  const next = await m.listItems({ limit: 2, cursor: page.next_cursor });
  assert.ok(next.items[0].id > page.items[1].id, "pages continue in id order");

  calls.length = 0;
  const all = [];
  for await (const item of m.iterItems({ pageSize: 3 })) all.push(item.id);
  assert.equal(new Set(all).size, all.length, "no item twice");
  assert.deepEqual([...all].sort(), all, "id order");
  for (const id of [...catalogue.keys(), ...batch.map((b) => b.id)]) assert.ok(all.includes(id), `${id} listed`);
  assert.ok(calls.length >= Math.ceil(all.length / 3), "one request per page");
});

test("users: put, patch, get, list, export and erase", async (t) => {
  const m = client();
  const id = `user-${run}`;
  t.after(async () => {
    for (const u of [id, `${id}-0`, `${id}-1`, `${id}-2`]) await m.deleteUser(u).catch(() => {});
  });
  const put = await m.putUser(id, { plan: "premium", country: "FR" });
  assert.deepEqual(put.attributes, { plan: "premium", country: "FR" });
  const patched = await m.patchUser(id, { country: null, age: 30 });
  assert.deepEqual(patched.attributes, { plan: "premium", age: 30 }, "null removes, others are kept");
  assert.deepEqual((await m.getUser(id)).attributes, patched.attributes);

  assert.deepEqual(
    await m.upsertUsers(
      [0, 1, 2].map((i) => ({ id: `${id}-${i}`, attributes: { i } })),
      { chunkSize: 2 },
    ),
    { upserted: 3 },
  );
  const listed = [];
  for await (const u of m.iterUsers({ pageSize: 2 })) listed.push(u.id);
  for (const u of [id, `${id}-0`, `${id}-1`, `${id}-2`]) assert.ok(listed.includes(u), `${u} listed`);
  const first = await m.listUsers({ limit: 1 });
  assert.equal(first.users.length, 1);

  await m.sendFeedback({ user_id: id, item_id: "up", type: "like" });
  const exported = await m.exportUser(id);
  assert.equal(exported.user_id, id);
  assert.deepEqual(exported.attributes, { plan: "premium", age: 30 });
  assert.deepEqual(
    exported.feedback.map((f) => [f.item_id, f.type]),
    [["up", "like"]],
  );

  const erased = await m.deleteUser(id);
  assert.equal(erased.user_id, id);
  assert.equal(erased.events_deleted, 1);
  assert.equal(typeof erased.retrain_requested, "boolean");
  await assert.rejects(m.getUser(id), NotFoundError);
});

test("sendFeedback: one event or many, chunked, idempotent when resent", async (t) => {
  const { fetch, calls } = recordingFetch();
  const m = client({ fetch, batchSize: 2 });
  const user = `fb-${run}`;
  t.after(() =>
    client()
      .deleteUser(user)
      .catch(() => {}),
  );
  assert.deepEqual(
    await m.sendFeedback({
      user_id: user,
      item_id: "alien",
      type: "rating",
      value: 4.5,
      timestamp: new Date("2026-01-02T03:04:05Z"),
    }),
    { accepted: 1 },
  );
  const events = ["heat", "casino", "up", "amelie", "arrival"].map((item_id, i) => ({
    user_id: user,
    item_id,
    type: "view",
    timestamp: 1_767_225_600 + i * 60,
  }));
  calls.length = 0;
  assert.deepEqual(await m.sendFeedback(events), { accepted: 5 });
  assert.equal(calls.length, 3, "the client's batchSize of 2");
  assert.deepEqual(await m.sendFeedback(events, { chunkSize: 10 }), { accepted: 5 });
  const stored = await m.userFeedback(user);
  assert.equal(stored.length, 6, "resending the same events leaves the same state");
  const rating = stored.find((f) => f.item_id === "alien");
  assert.deepEqual(rating, {
    user_id: user,
    item_id: "alien",
    type: "rating",
    value: 4.5,
    timestamp: "2026-01-02T03:04:05Z",
  });
  assert.equal(stored.find((f) => f.item_id === "amelie").timestamp, "2026-01-01T00:03:00Z", "Unix seconds");
  assert.equal((await m.userFeedback(user, { limit: 2 })).length, 2);
});

test("a refused chunk says what earlier chunks committed and where it began", async (t) => {
  const m = client();
  const user = `fb-partial-${run}`;
  t.after(() =>
    client()
      .deleteUser(user)
      .catch(() => {}),
  );
  const events = [
    { user_id: user, item_id: "heat", type: "view" },
    { user_id: user, item_id: "casino", type: "view" },
    { user_id: user, item_id: "up", type: "view" },
    { user_id: user, item_id: `missing-${run}`, type: "view" },
    { user_id: user, item_id: "alien", type: "view" },
  ];
  const error = await m.sendFeedback(events, { chunkSize: 2 }).catch((e) => e);
  assert.ok(error instanceof UnprocessableEntityError, `got ${error}`);
  assert.equal(error.status, 422);
  assert.equal(error.code, "invalid_batch");
  assert.match(error.message, /element 1 of the batch.*does not exist/);
  assert.deepEqual(error.batch, { offset: 2, committed: 2 });
  assert.deepEqual(
    new Set((await m.userFeedback(user)).map((f) => f.item_id)),
    new Set(["heat", "casino"]),
    "a refused chunk is refused whole",
  );
});

test("usage and invoice sum what the key did", async () => {
  const m = client();
  const before = await m.usage();
  assert.equal(before.object, "usage");
  await m.popular({ n: 1 });
  await m.popular({ n: 1 });
  const after = await m.usage({ groupBy: "route" });
  assert.equal(after.group_by, "route");
  assert.ok(after.total.requests >= before.total.requests + 2);
  assert.ok(after.total.units.recommendations >= (before.total.units.recommendations ?? 0) + 2);
  const popular = after.data.find((l) => l.group === "/v1/popular");
  assert.ok(popular && popular.requests >= 2, JSON.stringify(after.data));
  assert.equal(typeof after.total.cost, "string");
  const windowed = await m.usage({ from: new Date(Date.now() - 3_600_000), to: Date.now() / 1000 + 60 });
  assert.ok(windowed.total.requests >= 2);
  const month = new Date().toISOString().slice(0, 7);
  const invoice = await m.invoice(month);
  assert.equal(invoice.object, "invoice");
  assert.equal(invoice.period, month);
  assert.equal(invoice.status, "open");
  assert.ok(invoice.lines.some((l) => l.route === "/v1/popular" && l.requests >= 2));
});

test("server errors keep their status, code, message, param and request id", async () => {
  const m = client();
  const filter = await m.recommend("ann", { filter: "year >=" }).catch((e) => e);
  assert.ok(filter instanceof UnprocessableEntityError);
  assert.equal(filter.code, "invalid_request");
  assert.equal(filter.param, "filter");
  assert.match(filter.message, /filter/);
  assert.equal(filter.type, "invalid_request_error");
  assert.match(filter.requestId, /\S/);
  assert.ok(filter instanceof MarqueeError && filter instanceof Error);
  assert.equal(filter.name, "UnprocessableEntityError");

  const missing = await m.similar(`missing-${run}`).catch((e) => e);
  assert.ok(missing instanceof NotFoundError, String(missing));

  const bad = new Marquee({ baseUrl: env("MARQUEE_BASE_URL"), apiKey: "mq_sk_not_a_real_key" });
  const auth = await bad.popular().catch((e) => e);
  assert.ok(auth instanceof AuthenticationError);
  assert.equal(auth.status, 401);
  assert.equal(auth.code, "unauthorized");
  assert.ok(!auth.message.includes("mq_sk_not_a_real_key"));
});
