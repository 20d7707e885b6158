// Unit tests of what the client refuses before sending anything, and of where the key may and
// may not appear. The fetch given to these clients fails the test if it is ever called.

import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";
import { inspect } from "node:util";

import { Marquee, MarqueeError } from "../dist/index.js";

const KEY = "mq_sk_SuperSecretValue0123456789";

function offline(options = {}) {
  return new Marquee({
    baseUrl: "http://marquee.test/",
    apiKey: KEY,
    fetch: () => assert.fail("nothing may be sent for invalid arguments"),
    ...options,
  });
}

test("bad arguments throw TypeError or RangeError naming the argument, before any request", async () => {
  const m = offline();
  const cases = [
    [() => m.recommend(""), RangeError, /userId must not be empty/],
    [() => m.recommend(42), TypeError, /userId must be a string id, got number 42/],
    [() => m.recommend("x".repeat(257)), RangeError, /longer than 256 bytes/],
    [() => m.recommend("é".repeat(129)), RangeError, /longer than 256 bytes/],
    [() => m.recommend("a\nb"), RangeError, /control characters/],
    [() => m.recommend("ann", { n: 0 }), RangeError, /n must be between 1 and 1000, got 0/],
    [() => m.recommend("ann", { n: 1001 }), RangeError, /n must be between 1 and 1000/],
    [() => m.recommend("ann", { n: 2.5 }), TypeError, /n must be an integer/],
    [() => m.recommend("ann", { n: "10" }), TypeError, /n must be an integer/],
    [() => m.recommend("ann", { diversity: 1.5 }), RangeError, /diversity must be between 0 and 1/],
    [() => m.recommend("ann", { exploration: 0.6 }), RangeError, /exploration must be between 0 and 0.5/],
    [() => m.recommend("ann", { maxPerCategory: 0 }), RangeError, /maxPerCategory/],
    [() => m.recommend("ann", { categoryMatch: "some" }), RangeError, /categoryMatch must be one of "any", "all"/],
    [() => m.recommend("ann", { category: ["a,b"] }), RangeError, /must not contain a comma/],
    [() => m.recommend("ann", { exclude: "heat" }), TypeError, /exclude must be an array of ids/],
    [() => m.recommend("ann", { exclude: ["a,b"] }), RangeError, /comma/],
    [() => m.recommend("ann", { excludeSeen: "no" }), TypeError, /excludeSeen must be a boolean/],
    [() => m.recommend("ann", { filter: " " }), RangeError, /filter must not be empty/],
    [() => m.recommend("ann", { count: 5 }), TypeError, /unknown option "count"/],
    [() => m.recommend("ann", { item_id: "heat" }), TypeError, /unknown option "item_id"/],
    [() => m.recommend("ann", { itemId: "" }), RangeError, /itemId must not be empty/],
    [() => m.search("movies", { excludeSeen: true }), TypeError, /unknown option "excludeSeen"/],
    [() => m.search(""), RangeError, /query must not be empty/],
    [() => m.similar("heat", { n: -1 }), RangeError, /n must be between/],
    [() => m.session("heat"), TypeError, /items must be an array of ids/],
    [() => m.getUserData("ann", { history: 101 }), RangeError, /history must be between 1 and 100/],
    [() => m.sendFeedback({ user_id: "ann", item_id: "heat" }), TypeError, /event.type must be a string/],
    [
      () => m.sendFeedback([{ user_id: "ann", item_id: "heat", type: "view", kind: "x" }]),
      TypeError,
      /events\[0\]: unknown option "kind"/,
    ],
    [
      () => m.sendFeedback([{ user_id: "", item_id: "heat", type: "view" }]),
      RangeError,
      /events\[0\].user_id must not be empty/,
    ],
    [
      () => m.sendFeedback([{ user_id: "a", item_id: "h", type: "view", timestamp: "yesterday" }]),
      RangeError,
      /RFC 3339/,
    ],
    [
      () => m.sendFeedback([{ user_id: "a", item_id: "h", type: "view", value: Number.NaN }]),
      TypeError,
      /value must be a finite number/,
    ],
    [
      () => m.sendFeedback([{ user_id: "a", item_id: "h", type: "view", timestamp: new Date("x") }]),
      RangeError,
      /invalid Date/,
    ],
    [() => m.sendFeedback([], { chunkSize: 0 }), RangeError, /chunkSize/],
    [() => m.upsertItems([{ title: "No id" }]), TypeError, /items\[0\].id must be a string id/],
    [() => m.upsertItems([{ id: "x", categorys: ["Crime"] }]), TypeError, /unknown option "categorys"/],
    [() => m.putItem("heat", { id: "other" }), RangeError, /differs from itemId/],
    [() => m.putItem("heat", { categories: "Crime" }), TypeError, /item.categories must be an array of strings/],
    [() => m.patchItem("heat", { metadata: null }), TypeError, /send \{\} to clear it/],
    [() => m.patchItem("heat", { id: "heat" }), TypeError, /unknown option "id"/],
    [() => m.putUser("ann", []), TypeError, /attributes must be a plain object/],
    [() => m.upsertUsers([{ id: "ann", attrs: {} }]), TypeError, /unknown option "attrs"/],
    [() => m.listItems({ limit: 5000 }), RangeError, /limit must be between 1 and 1000/],
    [() => m.userFeedback("ann", { limit: 0 }), RangeError, /limit must be between 1 and 1000/],
    [() => m.embed([]), RangeError, /input must not be empty/],
    [() => m.embed(["ok", ""]), RangeError, /input\[1\] is an empty string/],
    [() => m.chat({ model: "m", messages: [] }), TypeError, /messages must be a non-empty array/],
    [
      () => m.chat({ model: "m", messages: [{ role: "robot", content: "hi" }] }),
      RangeError,
      /messages\[0\].role must be one of/,
    ],
    [
      () => m.chat({ model: "m", messages: [{ role: "user", content: "hi" }], temperature: 3 }),
      RangeError,
      /temperature/,
    ],
    [
      () => m.chat({ model: "m", messages: [{ role: "user", content: "hi" }], stop: ["a", "b", "c", "d", "e"] }),
      RangeError,
      /at most 4/,
    ],
    [
      () => m.chat({ model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 5 }),
      TypeError,
      /unknown option "max_tokens"/,
    ],
    [() => m.usage({ groupBy: "week" }), RangeError, /groupBy must be one of/],
    [() => m.usage({ from: "last week" }), RangeError, /from must be an RFC 3339 time/],
    [() => m.invoice("2026-13"), RangeError, /month must look like "2026-11"/],
    [() => m.recommend("ann", {}, { timeoutMs: 0 }), RangeError, /timeoutMs/],
    [() => m.recommend("ann", {}, { signal: "stop" }), TypeError, /signal must be an AbortSignal/],
  ];
  for (const [call, Class, message] of cases) {
    await assert.rejects(call, (e) => {
      assert.ok(e instanceof Class, `${call}: expected ${Class.name}, got ${e?.constructor?.name}: ${e?.message}`);
      assert.match(e.message, message, String(call));
      return true;
    });
  }
  // chatStream checks its arguments at once, synchronously.
  assert.throws(() => m.chatStream({ model: "", messages: [{ role: "user", content: "hi" }] }), RangeError);
  // The iterators check theirs when iteration starts.
  await assert.rejects(() => m.iterItems({ pageSize: 0 }).next(), RangeError);
  await assert.rejects(() => m.iterUsers({ size: 10 }).next(), /unknown option "size"/);
});

test("constructor options are checked", () => {
  assert.throws(
    () => new Marquee({ baseUrl: "localhost:8080", apiKey: KEY }),
    /baseUrl must be http or https|not an absolute URL/,
  );
  assert.throws(() => new Marquee({ baseUrl: "ftp://x", apiKey: KEY }), /http or https/);
  assert.throws(() => new Marquee({ baseUrl: "http://x", apiKey: "" }), /API key is required/);
  assert.throws(() => new Marquee({ baseUrl: "http://x", apiKey: KEY, maxRetries: -1 }), RangeError);
  assert.throws(() => new Marquee({ baseUrl: "http://x", apiKey: KEY, retries: 3 }), /unknown option "retries"/);
  assert.throws(() => new Marquee({ baseUrl: "http://x", apiKey: KEY, headers: { "x-a": 1 } }), /must be a string/);
  const m = offline({ maxRetries: 0, timeoutMs: 5000, batchSize: 500 });
  assert.equal(m.baseUrl, "http://marquee.test", "trailing slash dropped");
  assert.equal(m.maxRetries, 0);
  assert.equal(m.timeoutMs, 5000);
  assert.equal(m.batchSize, 500);
});

test("MARQUEE_BASE_URL and MARQUEE_API_KEY configure a client built without options", () => {
  const saved = { url: process.env.MARQUEE_BASE_URL, key: process.env.MARQUEE_API_KEY };
  try {
    process.env.MARQUEE_BASE_URL = "https://marquee.example.com/";
    process.env.MARQUEE_API_KEY = KEY;
    const m = new Marquee();
    assert.equal(m.baseUrl, "https://marquee.example.com");
    delete process.env.MARQUEE_API_KEY;
    assert.throws(() => new Marquee(), /pass apiKey or set MARQUEE_API_KEY/);
  } finally {
    for (const [name, value] of [
      ["MARQUEE_BASE_URL", saved.url],
      ["MARQUEE_API_KEY", saved.key],
    ]) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
});

test("the key never shows in inspect, JSON, or errors", async () => {
  const m = offline();
  assert.ok(!inspect(m, { showHidden: true, depth: 5 }).includes("SuperSecret"));
  assert.ok(!JSON.stringify(m).includes("SuperSecret"));
  assert.ok(!Object.values(m).some((v) => String(v).includes("SuperSecret")));
  const failing = new Marquee({
    baseUrl: "http://marquee.test",
    apiKey: KEY,
    maxRetries: 0,
    fetch: async () => {
      throw new TypeError("fetch failed");
    },
  });
  const error = await failing.getItem("heat").catch((e) => e);
  assert.ok(error instanceof MarqueeError);
  assert.equal(error.code, "connection_error");
  assert.ok(!inspect(error, { depth: 5 }).includes("SuperSecret"));
  assert.ok(!String(error.stack).includes("SuperSecret"));
});

test("in a browser, only a publishable key is accepted unless explicitly allowed", () => {
  globalThis.window = { document: {} };
  try {
    assert.throws(
      () => new Marquee({ baseUrl: "http://x", apiKey: KEY }),
      (e) => e instanceof MarqueeError && e.code === "secret_key_in_browser",
    );
    assert.ok(new Marquee({ baseUrl: "http://x", apiKey: "mq_pk_public" }));
    assert.ok(new Marquee({ baseUrl: "http://x", apiKey: KEY, dangerouslyAllowBrowser: true }));
  } finally {
    delete globalThis.window;
  }
});

test("the built package runs in browsers: no Node built-ins, every module is ESM with types", () => {
  const dist = new URL("../dist/", import.meta.url);
  const files = readdirSync(dist).filter((f) => f.endsWith(".js"));
  assert.ok(files.includes("index.js"));
  for (const f of files) {
    const text = readFileSync(new URL(f, dist), "utf8");
    assert.ok(!/from\s+["']node:|require\(/.test(text), `${f} imports a Node module`);
    assert.ok(!/\bBuffer\b/.test(text), `${f} uses Buffer`);
    assert.ok(readdirSync(dist).includes(f.replace(/\.js$/, ".d.ts")), `${f} has declarations`);
  }
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(pkg.type, "module");
  assert.deepEqual(Object.keys(pkg.dependencies ?? {}), [], "no runtime dependencies");
  assert.equal(pkg.exports["."].types, "./dist/index.d.ts");
});

test("a success that is not JSON (a proxy's page, a wrong baseUrl) is an error, not data", async () => {
  const m = new Marquee({
    baseUrl: "http://marquee.test",
    apiKey: KEY,
    fetch: async () => new Response("<html>Welcome to nginx</html>", { headers: { "content-type": "text/html" } }),
  });
  await assert.rejects(
    m.popular(),
    (e) => e instanceof MarqueeError && e.code === "invalid_response" && e.status === 200 && /nginx/.test(e.message),
  );
  const proxyError = new Marquee({
    baseUrl: "http://marquee.test",
    apiKey: KEY,
    maxRetries: 0,
    fetch: async () => new Response("Bad Gateway", { status: 502, headers: { "content-type": "text/plain" } }),
  });
  await assert.rejects(
    proxyError.popular(),
    (e) =>
      e.name === "InternalServerError" &&
      e.status === 502 &&
      e.code === "server_error" &&
      /Bad Gateway/.test(e.message),
  );
});
