// Retries: the rule shared with the Python and Rust SDKs (README, "Retries") on answers scripted
// by a mock fetch; a real 429 from a key limited to one request per second; and transport failures
// (a closed port, a server that accepts connections and never answers). Calls that cannot do
// anything twice are retried with backoff, after at least what Retry-After asks; a chat
// completion never is.

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, test } from "node:test";

import { backoffMs, retryWaitMs } from "../dist/client.js";
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIUserAbortError,
  InternalServerError,
  Marquee,
  MarqueeError,
  RETRYABLE_POSTS,
  RateLimitError,
  mayRepeat,
} from "../dist/index.js";
import { env, recordingFetch } from "./helpers.js";

const messages = [{ role: "user", content: "hi" }];

// ---------------------------------------------------------------------------------------------
// The rule, on scripted answers

/**
 * A fetch answering each request with the next scripted `[status, headers, body]` (200 `{}` once
 * the script is used up), recording method, path, body and time.
 */
function scripted(answers) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ method: init.method, path: new URL(url).pathname, body: init.body, at: Date.now() });
    const [status, headers, body] = answers.shift() ?? [200, {}, {}];
    const text = typeof body === "string" ? body : JSON.stringify(body);
    return new Response(text, { status, headers: { "content-type": "application/json", ...headers } });
  };
  return { fetch, calls, paths: () => calls.map((c) => `${c.method} ${c.path}`) };
}

function scriptedClient(answers, options = {}) {
  const s = scripted(answers);
  return { ...s, m: new Marquee({ baseUrl: "http://marquee.test", apiKey: "mq_sk_x", fetch: s.fetch, maxRetries: 3, ...options }) };
}

const errorBody = (code) => ({ error: { code, message: `${code} (scripted)`, type: "t", param: null } });
/** Retry at once (the backoff is tested on its own). */
const FAST = { "retry-after-ms": "1" };
const EMBEDDING = { object: "list", data: [{ object: "embedding", index: 0, embedding: [1] }] };

test("rule: 502, 503, 504 and 429 are retried for calls that may be repeated", async () => {
  const { m, paths } = scriptedClient([
    [502, FAST, "<html>Bad gateway</html>"],
    [504, FAST, ""],
    [503, FAST, errorBody("overloaded")],
    [429, FAST, errorBody("rate_limit_exceeded")],
    [200, {}, [{ item_id: "heat" }]],
  ]);
  assert.deepEqual(await m.popular({ n: 1 }, { maxRetries: 4 }), [{ item_id: "heat" }]);
  assert.deepEqual(paths(), Array(5).fill("GET /v1/popular"));
  const calls = [
    ["PUT /v1/items/heat", (c) => c.putItem("heat", { title: "Heat" })],
    ["PATCH /v1/items/heat", (c) => c.patchItem("heat", { title: "Heat" })],
    ["DELETE /v1/items/heat", (c) => c.deleteItem("heat")],
    ["POST /v1/feedback", (c) => c.sendFeedback({ user_id: "ann", item_id: "heat", type: "view" })],
    ["POST /v1/items", (c) => c.upsertItems([{ id: "heat" }])],
    ["POST /v1/users", (c) => c.upsertUsers([{ id: "ann" }])],
    ["POST /v1/recommend/session", (c) => c.session(["heat"])],
  ];
  for (const [path, call] of calls) {
    const s = scriptedClient([
      [502, FAST, ""],
      [504, FAST, ""],
    ]);
    await call(s.m);
    assert.deepEqual(s.paths(), [path, path, path], path);
  }
});

test("rule: embeddings are retried on 429", async () => {
  const { m, paths } = scriptedClient([
    [429, FAST, errorBody("rate_limit_exceeded")],
    [200, {}, EMBEDDING],
  ]);
  assert.deepEqual((await m.embed("hello")).data[0].embedding, [1]);
  assert.deepEqual(paths(), ["POST /v1/embeddings", "POST /v1/embeddings"]);
});

test("rule: chat completions are never retried", async () => {
  for (const status of [429, 502, 503, 504]) {
    const { m, paths } = scriptedClient(Array(2).fill([status, FAST, errorBody("busy")]));
    const error = await m.chat({ model: "m", messages }).catch((e) => e);
    assert.ok(error instanceof MarqueeError && error.status === status, String(error));
    await assert.rejects(m.chatStream({ model: "m", messages }).text(), MarqueeError);
    assert.deepEqual(paths(), ["POST /v1/chat/completions", "POST /v1/chat/completions"]);
  }
});

test("rule: quota_exceeded and budget_exceeded are thrown at once", async () => {
  for (const code of ["quota_exceeded", "budget_exceeded"]) {
    const { m, calls } = scriptedClient([[429, { "retry-after": "1" }, errorBody(code)]]);
    const started = Date.now();
    const error = await m.popular().catch((e) => e);
    assert.ok(error instanceof RateLimitError, String(error));
    assert.equal(error.code, code);
    assert.equal(error.retryAfter, 1);
    assert.equal(calls.length, 1);
    assert.ok(Date.now() - started < 900, "not waited for");
  }
});

test("rule: a Retry-After over maxRetryDelayMs is thrown at once", async () => {
  const { m, calls } = scriptedClient([[503, { "retry-after": "5" }, errorBody("busy")]], { maxRetryDelayMs: 2000 });
  const error = await m.popular().catch((e) => e);
  assert.ok(error instanceof InternalServerError, String(error));
  assert.equal(error.retryAfter, 5);
  assert.equal(calls.length, 1);
});

test("rule: retry-after-ms wins over Retry-After and is honoured", async () => {
  const { m, calls } = scriptedClient([[429, { "retry-after-ms": "300", "retry-after": "30" }, errorBody("rate_limit_exceeded")]]);
  await m.popular();
  assert.equal(calls.length, 2);
  const waited = calls[1].at - calls[0].at;
  assert.ok(waited >= 300, `never earlier than asked: ${waited} ms`);
  assert.ok(waited < 300 + 30 + 1000, `at most 10 % later (and slack): ${waited} ms`);
});

test("rule: an HTTP-date Retry-After is honoured", async () => {
  // Whole seconds: 0.5–1.5 s from now.
  const date = new Date(Date.now() + 1500).toUTCString();
  const { m, calls } = scriptedClient([[503, { "retry-after": date }, errorBody("busy")]]);
  await m.getItem("heat");
  assert.equal(calls.length, 2);
  assert.ok(calls[1].at >= Date.parse(date), "not before the date");
  assert.ok(calls[1].at - calls[0].at < 3000);
  // Fractional seconds too.
  const s = scriptedClient([[503, { "retry-after": "0.4" }, errorBody("busy")]]);
  await s.m.popular();
  assert.ok(s.calls[1].at - s.calls[0].at >= 400);
});

test("rule: other errors are not retried", async () => {
  for (const status of [400, 401, 404, 409, 413, 422, 500]) {
    const { m, calls } = scriptedClient([[status, FAST, errorBody("no")]]);
    await assert.rejects(m.popular(), MarqueeError);
    assert.equal(calls.length, 1, String(status));
  }
});

test("rule: which calls may be repeated", () => {
  for (const method of ["GET", "HEAD", "PUT", "PATCH", "DELETE"]) {
    assert.ok(mayRepeat({ method, path: "/v1/anything" }), method);
  }
  const posts = [
    "/v1/feedback",
    "/v1/items",
    "/v1/users",
    "/v1/recommend/session",
    "/v1/embeddings",
    "/v1/audio/speech",
    "/v1/audio/transcriptions",
    "/v1/images/classify",
  ];
  assert.deepEqual([...RETRYABLE_POSTS].sort(), [...posts].sort());
  for (const path of posts) assert.ok(mayRepeat({ method: "POST", path }), path);
  for (const path of [
    "/v1/chat/completions",
    "/v1/models/train",
    "/v1/admin/tenants/t/keys",
    "/v1/keys/k/rotate",
    "/v1/experiments",
    "/v1/items/heat/copy",
    "/v1/anything-new",
  ]) {
    assert.ok(!mayRepeat({ method: "POST", path }), path);
  }
  assert.ok(!mayRepeat({ method: "GET", path: "/v1/popular", idempotent: false }));
});

test("rule: waits are never shorter than asked, jitter is bounded, backoff doubles to 8 s", () => {
  for (const [asked, most] of [
    [0, 0],
    [1, 1100],
    [2, 2200],
    [10, 10_250],
    [60, 60_250],
  ]) {
    for (let i = 0; i < 200; i++) {
      const w = retryWaitMs(asked);
      assert.ok(w >= asked * 1000 && w <= most, `${asked} s: ${w} ms`);
    }
  }
  for (const [attempt, full] of [
    [0, 500],
    [1, 1000],
    [2, 2000],
    [3, 4000],
    [10, 8000],
  ]) {
    for (let i = 0; i < 200; i++) {
      const b = backoffMs(attempt);
      assert.ok(b >= 0.75 * full && b <= full, `attempt ${attempt}: ${b} ms`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Against the server's real limits

/** A client with the key whose `limits.requests_per_second` is 1. */
function limited(options = {}) {
  return new Marquee({ baseUrl: env("MARQUEE_BASE_URL"), apiKey: env("MARQUEE_LIMITED_KEY"), ...options });
}

/** Spends this second's request, waiting for a fresh window first. */
async function spendWindow() {
  await limited({ maxRetries: 10 }).popular({ n: 1 });
}

test("a 429 on an idempotent call is retried after Retry-After, then succeeds", async () => {
  await spendWindow();
  const { fetch, calls } = recordingFetch();
  const recs = await limited({ fetch, maxRetries: 3 }).popular({ n: 2 });
  assert.equal(recs.length, 2);
  assert.ok(calls.length >= 2, `retried: ${calls.map((c) => c.status)}`);
  assert.equal(calls[0].status, 429);
  assert.equal(calls.at(-1).status, 200);
  const retryAfter = Number(calls[0].responseHeaders.get("retry-after"));
  assert.ok(retryAfter >= 1, "the server asks for at least a second");
  assert.ok(calls[1].at - calls[0].at >= retryAfter * 1000, `waited ${calls[1].at - calls[0].at} ms`);
  // A feedback batch is idempotent by design (keyed by user, item and type): retried too.
  const { fetch: f2, calls: c2 } = recordingFetch();
  await spendWindow();
  assert.deepEqual(
    await limited({ fetch: f2 }).sendFeedback({ user_id: `retry-${process.pid}`, item_id: "heat", type: "skip" }),
    { accepted: 1 },
  );
  assert.deepEqual(c2.map((c) => c.status).slice(0, 1), [429]);
  assert.equal(c2.at(-1).status, 200);
  await limited({ maxRetries: 10 })
    .deleteUser(`retry-${process.pid}`)
    .catch(() => {});
});

test("without retries the RateLimitError carries the server's code, Retry-After and headers", async () => {
  await spendWindow();
  const error = await limited({ maxRetries: 0 })
    .popular()
    .catch((e) => e);
  assert.ok(error instanceof RateLimitError, String(error));
  assert.equal(error.status, 429);
  assert.equal(error.code, "rate_limit_exceeded");
  assert.equal(error.type, "rate_limit_error");
  assert.ok(error.retryAfter >= 1);
  assert.equal(error.headers.get("x-ratelimit-limit-requests"), "1");
});

test("a Retry-After longer than maxRetryDelayMs is not waited for", async () => {
  await spendWindow();
  const { fetch, calls } = recordingFetch();
  const error = await limited({ fetch, maxRetries: 3, maxRetryDelayMs: 500 })
    .popular()
    .catch((e) => e);
  assert.ok(error instanceof RateLimitError);
  assert.ok(error.retryAfter * 1000 > 500);
  assert.equal(calls.length, 1, "thrown at once, not retried");
});

test("a chat completion is never retried, even on a 429", async () => {
  await spendWindow();
  const { fetch, calls } = recordingFetch();
  const error = await limited({ fetch, maxRetries: 3 })
    .chat({ model: "any-model", messages })
    .catch((e) => e);
  assert.ok(error instanceof RateLimitError, String(error));
  assert.equal(calls.length, 1);
});

// ---------------------------------------------------------------------------------------------
// Transport failures

/** A TCP server that accepts connections and never answers; counts connections. */
let stalled;
let stalledConnections = 0;
let closedPort;

before(async () => {
  const sockets = new Set();
  stalled = createServer((socket) => {
    stalledConnections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  });
  stalled.sockets = sockets;
  await new Promise((resolve) => stalled.listen(0, "127.0.0.1", resolve));
  // A port nobody listens on: bind one, note it, close it.
  const probe = createServer();
  await new Promise((resolve) => probe.listen(0, "127.0.0.1", resolve));
  closedPort = probe.address().port;
  await new Promise((resolve) => probe.close(resolve));
});

after(() => {
  for (const s of stalled.sockets) s.destroy();
  stalled.close();
});

function offline(baseUrl, options = {}) {
  return new Marquee({ baseUrl, apiKey: "mq_sk_transport_test", ...options });
}

test("connection failures are retried with backoff for idempotent calls only", async () => {
  const base = `http://127.0.0.1:${closedPort}`;
  const { fetch, calls } = recordingFetch();
  const started = Date.now();
  const error = await offline(base, { fetch, maxRetries: 2 })
    .getItem("heat")
    .catch((e) => e);
  assert.ok(error instanceof APIConnectionError && !(error instanceof APIConnectionTimeoutError), String(error));
  assert.equal(error.status, undefined);
  assert.equal(error.code, "connection_error");
  assert.equal(calls.length, 3, "one try and two retries");
  assert.ok(Date.now() - started >= (500 + 1000) * 0.75, "backed off between tries");

  const { fetch: f2, calls: c2 } = recordingFetch();
  await assert.rejects(offline(base, { fetch: f2, maxRetries: 2 }).chat({ model: "m", messages }), APIConnectionError);
  assert.equal(c2.length, 1);
});

test("a server that never answers times out per attempt", async () => {
  const base = `http://127.0.0.1:${stalled.address().port}`;
  const before = stalledConnections;
  const started = Date.now();
  const error = await offline(base, { timeoutMs: 200, maxRetries: 1 })
    .popular()
    .catch((e) => e);
  assert.ok(error instanceof APIConnectionTimeoutError, String(error));
  assert.equal(error.code, "timeout");
  assert.ok(Date.now() - started >= 400, "two attempts of 200 ms");
  assert.equal(stalledConnections - before, 2);

  const stream = offline(base, { timeoutMs: 200 }).chatStream({ model: "m", messages });
  await assert.rejects(stream.text(), APIConnectionTimeoutError);
  // A per-call timeout overrides the client's.
  const quick = Date.now();
  await assert.rejects(
    offline(base, { timeoutMs: 60_000, maxRetries: 0 }).popular({}, { timeoutMs: 100 }),
    APIConnectionTimeoutError,
  );
  assert.ok(Date.now() - quick < 5000);
});

test("the caller's AbortSignal stops a call, and it is not retried", async () => {
  const base = `http://127.0.0.1:${stalled.address().port}`;
  const before = stalledConnections;
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 100);
  const error = await offline(base, { maxRetries: 3 })
    .popular({}, { signal: controller.signal })
    .catch((e) => e);
  assert.ok(error instanceof APIUserAbortError, String(error));
  assert.equal(error.code, "aborted");
  assert.equal(stalledConnections - before, 1);
  // An already aborted signal sends nothing.
  await assert.rejects(offline(base).popular({}, { signal: AbortSignal.abort() }), APIUserAbortError);
  assert.equal(stalledConnections - before, 1);
});
