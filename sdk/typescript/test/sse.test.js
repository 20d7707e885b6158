// Unit tests of the event-stream reader and of ChatStream. The integration tests stream from a
// real model (models.test.js); these pin down the byte-level cases a real server rarely
// produces on demand: every possible split of the bytes between reads, CRLF and CR line ends,
// multi-line data, comments, a UTF-8 character split between reads, error events and a stream
// cut short. The captured stream is a real answer of Marquee's /v1/chat/completions.

import assert from "node:assert/strict";
import { test } from "node:test";

import { parseServerSentEvents } from "../dist/sse.js";
import { APIConnectionError, InternalServerError, Marquee } from "../dist/index.js";

const CAPTURED = [
  'data: {"choices":[{"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1796031054,"id":"chatcmpl-411b99eb563a71a082d32e42","model":"smollm2-135m-instruct","object":"chat.completion.chunk","system_fingerprint":"marquee-0.1.0"}',
  'data: {"choices":[{"delta":{"content":"\\""},"finish_reason":null,"index":0,"logprobs":null}],"created":1796031054,"id":"chatcmpl-411b99eb563a71a082d32e42","model":"smollm2-135m-instruct","object":"chat.completion.chunk","system_fingerprint":"marquee-0.1.0"}',
  'data: {"choices":[{"delta":{"content":"Say"},"finish_reason":null,"index":0,"logprobs":null}],"created":1796031054,"id":"chatcmpl-411b99eb563a71a082d32e42","model":"smollm2-135m-instruct","object":"chat.completion.chunk","system_fingerprint":"marquee-0.1.0"}',
  'data: {"choices":[{"delta":{"content":" hé ✓"},"finish_reason":null,"index":0,"logprobs":null}],"created":1796031054,"id":"chatcmpl-411b99eb563a71a082d32e42","model":"smollm2-135m-instruct","object":"chat.completion.chunk","system_fingerprint":"marquee-0.1.0"}',
  ": keep-alive",
  'data: {"choices":[{"delta":{},"finish_reason":"length","index":0,"logprobs":null}],"created":1796031054,"id":"chatcmpl-411b99eb563a71a082d32e42","model":"smollm2-135m-instruct","object":"chat.completion.chunk","system_fingerprint":"marquee-0.1.0"}',
  'data: {"choices":[],"created":1796031054,"id":"chatcmpl-411b99eb563a71a082d32e42","model":"smollm2-135m-instruct","object":"chat.completion.chunk","system_fingerprint":"marquee-0.1.0","usage":{"completion_tokens":3,"prompt_tokens":31,"total_tokens":34}}',
  "data: [DONE]",
]
  .map((line) => (line.startsWith(":") ? `${line}\n` : `${line}\n\n`))
  .join("");

/** A body stream that hands over `bytes` in the given pieces. */
function streamOf(pieces) {
  return new ReadableStream({
    start(controller) {
      for (const p of pieces) controller.enqueue(p);
      controller.close();
    },
  });
}

async function events(pieces) {
  const out = [];
  for await (const e of parseServerSentEvents(streamOf(pieces))) out.push(e);
  return out;
}

test("the captured stream parses the same however its bytes are split", async () => {
  const bytes = new TextEncoder().encode(CAPTURED);
  const whole = await events([bytes]);
  assert.equal(whole.length, 7);
  assert.equal(whole.at(-1).data, "[DONE]");
  assert.ok(whole.every((e) => e.event === "message"));
  assert.equal(JSON.parse(whole[3].data).choices[0].delta.content, " hé ✓");
  // Every split point, including those inside "é" and "✓" (multi-byte) and inside "\n\n".
  for (let cut = 1; cut < bytes.length; cut++) {
    const split = await events([bytes.slice(0, cut), bytes.slice(cut)]);
    assert.deepEqual(split, whole, `split at byte ${cut}`);
  }
  // One byte per read.
  assert.deepEqual(await events([...bytes].map((b) => Uint8Array.of(b))), whole);
});

test("CRLF and CR line ends, multi-line data, named events, ids and comments", async () => {
  const text =
    "event: update\r\nid: 7\r\ndata: first\r\ndata: second\r\n\r\n:comment\rdata:no-space\r\r" +
    "data: tail without blank line";
  const bytes = new TextEncoder().encode(text);
  const expected = [
    { event: "update", data: "first\nsecond", id: "7" },
    { event: "message", data: "no-space", id: "7" },
  ];
  assert.deepEqual(await events([bytes]), expected);
  // A CRLF split between two reads is one line end, not two.
  for (let cut = 1; cut < bytes.length; cut++) {
    assert.deepEqual(await events([bytes.slice(0, cut), bytes.slice(cut)]), expected, `split at ${cut}`);
  }
});

/** A client whose fetch answers with `body` (a canned Marquee answer) and records calls. */
function cannedClient(body, init = {}) {
  const calls = [];
  const marquee = new Marquee({
    baseUrl: "http://marquee.test",
    apiKey: "mq_sk_unit",
    fetch: async (url, req) => {
      calls.push({ url, req });
      return new Response(body, {
        status: init.status ?? 200,
        headers: { "content-type": init.type ?? "text/event-stream", ...init.headers },
      });
    },
  });
  return { marquee, calls };
}

const messages = [{ role: "user", content: "Say hi" }];

test("chatStream yields the text deltas and records id, finish reason and usage", async () => {
  const { marquee, calls } = cannedClient(CAPTURED);
  const stream = marquee.chatStream({ model: "smollm2-135m-instruct", messages, maxTokens: 3 });
  assert.equal(calls.length, 0, "nothing is sent before iteration");
  const deltas = [];
  for await (const d of stream) deltas.push(d);
  assert.deepEqual(deltas, ['"', "Say", " hé ✓"]);
  assert.equal(stream.id, "chatcmpl-411b99eb563a71a082d32e42");
  assert.equal(stream.model, "smollm2-135m-instruct");
  assert.equal(stream.finishReason, "length");
  assert.deepEqual(stream.usage, { completion_tokens: 3, prompt_tokens: 31, total_tokens: 34 });
  const sent = JSON.parse(calls[0].req.body);
  assert.deepEqual(sent, {
    model: "smollm2-135m-instruct",
    messages,
    max_tokens: 3,
    stream: true,
    stream_options: { include_usage: true },
  });
  assert.equal(calls[0].req.headers.accept, "text/event-stream");
  await assert.rejects(async () => {
    for await (const _ of stream);
  }, /only once/);
});

test("an error event in the stream is thrown with the server's code", async () => {
  const body =
    'data: {"choices":[{"delta":{"content":"Hi"},"finish_reason":null,"index":0}],"id":"c","model":"m","object":"chat.completion.chunk","created":1}\n\n' +
    'data: {"error":{"code":"inference_failed","message":"the model failed","type":"server_error","param":null}}\n\n' +
    "data: [DONE]\n\n";
  const { marquee } = cannedClient(body);
  const seen = [];
  await assert.rejects(
    async () => {
      for await (const d of marquee.chatStream({ model: "m", messages })) seen.push(d);
    },
    (e) => e instanceof InternalServerError && e.code === "inference_failed" && e.message === "the model failed",
  );
  assert.deepEqual(seen, ["Hi"]);
});

test("a stream cut before [DONE] is a connection error, not a silent short answer", async () => {
  const cut = CAPTURED.slice(0, CAPTURED.indexOf('data: {"choices":[{"delta":{},"finish_reason"'));
  const { marquee } = cannedClient(cut);
  const stream = marquee.chatStream({ model: "m", messages });
  await assert.rejects(
    () => stream.text(),
    (e) => e instanceof APIConnectionError && /ended before/.test(e.message),
  );
});

test("a refused stream request throws the status error before any text", async () => {
  const { marquee, calls } = cannedClient(
    JSON.stringify({
      error: { code: "rate_limit_exceeded", message: "slow down", type: "rate_limit_error", param: null },
    }),
    { status: 429, type: "application/json", headers: { "retry-after": "1" } },
  );
  await assert.rejects(
    () => marquee.chatStream({ model: "m", messages }).text(),
    (e) => e.status === 429 && e.code === "rate_limit_exceeded" && e.retryAfter === 1,
  );
  assert.equal(calls.length, 1, "a chat completion is not idempotent: never retried");
});
