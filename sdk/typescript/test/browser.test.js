// A web page's view: a publishable key with `allowed_origins: ["http://localhost:5173"]` is all a
// page needs for recommendations and feedback. Node's fetch sends no Origin header, so these tests
// add the one a browser would (through the `headers` option, and through a custom fetch) and check
// what the browser would check: the CORS preflight answer and the answer's CORS headers.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Marquee, PermissionDeniedError } from "../dist/index.js";
import { client, env, recordingFetch, run } from "./helpers.js";

const ORIGIN = "http://localhost:5173";
// An item and users of this file's own, so its feedback leaves the fixture's expectations alone.
const item = `web-${run}`;
const user = `visitor-${run}`;

before(async () => {
  await client().putItem(item, { title: "Web Only", categories: [`Web-${run}`] });
});

after(async () => {
  const admin = client();
  await admin.deleteUser(user).catch(() => {});
  await admin.deleteUser(`${user}-2`).catch(() => {});
  await admin.deleteItem(item).catch(() => {});
});

/** The client a page on `origin` would have: the publishable key, and the browser's Origin header. */
function page(origin = ORIGIN, options = {}) {
  return new Marquee({
    baseUrl: env("MARQUEE_BASE_URL"),
    apiKey: env("MARQUEE_PUBLISHABLE_KEY"),
    headers: { Origin: origin },
    ...options,
  });
}

test("the publishable key gets recommendations and sends feedback from its allowed origin", async () => {
  const admin = client();

  const { fetch, calls } = recordingFetch();
  const m = page(ORIGIN, { fetch });
  const recs = await m.recommend("ann", { n: 3 });
  assert.equal(recs.length, 3);
  assert.equal(recs[0].item_id, "goodfellas");
  const inContext = await m.recommend("ann", { itemId: "heat", n: 2 });
  assert.equal(inContext[0].reason.kind, "similar_to_context");

  const sent = await m.sendFeedback({
    user_id: user,
    item_id: item,
    type: "click",
    recommendation_id: recs[0].recommendation_id,
  });
  assert.deepEqual(sent, { accepted: 1 });
  assert.deepEqual(
    (await admin.userFeedback(user)).map((f) => [f.item_id, f.type]),
    [[item, "click"]],
  );

  for (const call of calls) {
    assert.equal(call.headers.Origin, ORIGIN);
    assert.match(call.headers.authorization, /^Bearer mq_pk_/);
    assert.equal(call.status, 200);
    // What lets the page's script read the answer.
    assert.equal(call.responseHeaders.get("access-control-allow-origin"), ORIGIN);
    assert.match(call.responseHeaders.get("access-control-expose-headers"), /retry-after/);
    assert.match(call.responseHeaders.get("vary"), /origin/i);
  }
});

test("a custom fetch can add the Origin header too", async () => {
  const m = new Marquee({
    baseUrl: env("MARQUEE_BASE_URL"),
    apiKey: env("MARQUEE_PUBLISHABLE_KEY"),
    fetch: (url, init) => fetch(url, { ...init, headers: { ...init.headers, origin: ORIGIN } }),
  });
  assert.equal((await m.popular({ n: 1 }))[0].item_id, "heat");
});

test("another origin is refused with 403 origin_not_allowed", async () => {
  for (const origin of ["http://evil.example", "http://localhost:5174", "https://localhost:5173"]) {
    const m = page(origin, { maxRetries: 0 });
    const error = await m.recommend("ann").catch((e) => e);
    assert.ok(error instanceof PermissionDeniedError, `${origin}: ${error}`);
    assert.equal(error.status, 403);
    assert.equal(error.code, "origin_not_allowed");
    assert.equal(error.type, "permission_error");
    assert.match(error.message, new RegExp(origin.replace(/[.:/]/g, "\\$&")));
    const feedback = await m.sendFeedback({ user_id: user, item_id: item, type: "view" }).catch((e) => e);
    assert.equal(feedback.code, "origin_not_allowed");
  }
});

test("the publishable key may not read or write the catalogue", async () => {
  const m = page();
  const read = await m.getItem("heat").catch((e) => e);
  assert.ok(read instanceof PermissionDeniedError);
  assert.equal(read.code, "missing_scope");
  assert.match(read.message, /catalog:read/);
  const write = await m.putItem(`web-denied-${run}`, { title: "No" }).catch((e) => e);
  assert.equal(write.code, "missing_scope");
  const profile = await m.getUserData("ann").catch((e) => e);
  assert.equal(profile.code, "missing_scope");
});

test("the CORS preflight a browser sends first allows the SDK's headers and methods", async () => {
  for (const [path, method] of [
    ["/v1/recommend/ann", "GET"],
    ["/v1/feedback", "POST"],
  ]) {
    const response = await fetch(`${env("MARQUEE_BASE_URL")}${path}`, {
      method: "OPTIONS",
      headers: {
        Origin: ORIGIN,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
      },
    });
    assert.equal(response.status, 204, path);
    assert.equal(response.headers.get("access-control-allow-origin"), ORIGIN);
    const allowed = response.headers
      .get("access-control-allow-headers")
      .split(",")
      .map((h) => h.trim().toLowerCase());
    assert.ok(allowed.includes("authorization") && allowed.includes("content-type"), `allowed headers: ${allowed}`);
    const methods = response.headers
      .get("access-control-allow-methods")
      .split(",")
      .map((m) => m.trim());
    assert.ok(methods.includes(method), `allowed methods: ${methods}`);
  }
  // The SDK sends only those two headers beyond the safelisted ones, so one preflight covers it.
  const { fetch: recording, calls } = recordingFetch();
  await page(ORIGIN, { fetch: recording }).sendFeedback({ user_id: `${user}-2`, item_id: item, type: "view" });
  const sent = Object.keys(calls[0].headers)
    .map((h) => h.toLowerCase())
    .sort();
  assert.deepEqual(sent, ["accept", "authorization", "content-type", "origin"]);
});
