// Retries: a real 429 from a key limited to one request per second, and transport failures
// (a closed port, a server that accepts connections and never answers). Idempotent calls are
// retried with backoff, after at least what Retry-After asks; a chat completion never is.

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, test } from "node:test";

import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIUserAbortError,
  Marquee,
  RateLimitError,
} from "../dist/index.js";
import { env, recordingFetch } from "./helpers.js";

/** A client with the key whose `limits.requests_per_second` is 1. */
function limited(options = {}) {
  return new Marquee({ baseUrl: env("MARQUEE_BASE_URL"), apiKey: env("MARQUEE_LIMITED_KEY"), ...options });
}

/** Spends this second's request, waiting for a fresh window first. */
async function spendWindow() {
  await limited({ maxRetries: 10 }).popular({ n: 1 });
}

const messages = [{ role: "user", content: "hi" }];

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
