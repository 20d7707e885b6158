// The model routes with real models loaded in the test server: a small chat model
// (MARQUEE_CHAT_MODEL) and an embedding model (MARQUEE_EMBEDDING_MODEL), which also powers
// semantic search over the fixture catalogue. Skipped, saying so, when the server has none.

import assert from "node:assert/strict";
import { test } from "node:test";

import { BadRequestError, NotFoundError } from "../dist/index.js";
import { client } from "./helpers.js";

const chatModel = process.env.MARQUEE_CHAT_MODEL;
const embeddingModel = process.env.MARQUEE_EMBEDDING_MODEL;
const noChat = !chatModel && "MARQUEE_CHAT_MODEL is not set (the server has no chat model)";
const noEmbeddings = !embeddingModel && "MARQUEE_EMBEDDING_MODEL is not set (the server has no embedding model)";
const messages = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "Name a film about a heist." },
];

test("chat returns a completion with usage", { skip: noChat }, async () => {
  const completion = await client().chat({ model: chatModel, messages, maxTokens: 8, temperature: 0, seed: 1 });
  assert.equal(completion.object, "chat.completion");
  assert.match(completion.id, /^chatcmpl-/);
  assert.equal(completion.model, chatModel);
  const [choice] = completion.choices;
  assert.equal(choice.message.role, "assistant");
  assert.ok(choice.message.content.length > 0);
  assert.ok(["stop", "length"].includes(choice.finish_reason));
  assert.ok(completion.usage.prompt_tokens > 0);
  assert.ok(completion.usage.completion_tokens >= 1 && completion.usage.completion_tokens <= 8);
  assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + completion.usage.completion_tokens);
});

test("chatStream yields the same text as it is generated", { skip: noChat }, async () => {
  const m = client();
  const params = { model: chatModel, messages, maxTokens: 8, temperature: 0, seed: 1 };
  const whole = await m.chat(params);
  const stream = m.chatStream(params);
  const deltas = [];
  for await (const text of stream) deltas.push(text);
  assert.ok(deltas.length >= 1);
  assert.equal(deltas.join(""), whole.choices[0].message.content, "greedy decoding: the same text both ways");
  assert.match(stream.id, /^chatcmpl-/);
  assert.equal(stream.model, chatModel);
  assert.equal(stream.finishReason, whole.choices[0].finish_reason);
  assert.deepEqual(stream.usage, whole.usage);
});

test("leaving a stream early closes it without an error", { skip: noChat }, async () => {
  const stream = client().chatStream({ model: chatModel, messages, maxTokens: 64 });
  let first;
  for await (const text of stream) {
    first = text;
    break;
  }
  assert.equal(typeof first, "string");
  // The server is still fine afterwards.
  assert.ok((await client().chat({ model: chatModel, messages, maxTokens: 1 })).choices.length === 1);
});

test("model errors map to their classes", { skip: noChat || noEmbeddings }, async () => {
  const unknown = await client()
    .chat({ model: "no-such-model", messages })
    .catch((e) => e);
  assert.ok(unknown instanceof NotFoundError, String(unknown));
  assert.equal(unknown.code, "model_not_found");
  const wrongKind = await client()
    .chat({ model: embeddingModel, messages })
    .catch((e) => e);
  assert.ok(wrongKind instanceof BadRequestError, String(wrongKind));
  assert.equal(wrongKind.status, 400);
  const streamed = await client()
    .chatStream({ model: "no-such-model", messages })
    .text()
    .catch((e) => e);
  assert.ok(streamed instanceof NotFoundError);
});

test("embed returns one normalised vector per input", { skip: noEmbeddings }, async () => {
  const m = client();
  const res = await m.embed(["a film about a heist", "a film about a heist", "a recipe for soup"], {
    model: embeddingModel,
  });
  assert.equal(res.object, "list");
  assert.equal(res.model, embeddingModel);
  assert.deepEqual(
    res.data.map((d) => d.index),
    [0, 1, 2],
  );
  const [a, b, c] = res.data.map((d) => d.embedding);
  assert.ok(a.length >= 64 && a.length === c.length);
  const dot = (x, y) => x.reduce((s, v, i) => s + v * y[i], 0);
  assert.ok(Math.abs(dot(a, a) - 1) < 1e-3, "unit length");
  assert.ok(dot(a, b) > 0.999, "the same text, the same vector");
  assert.ok(dot(a, c) < dot(a, b));
  const one = await m.embed("hello");
  assert.equal(one.data.length, 1);
  assert.ok(one.usage.prompt_tokens > 0);
  const wrong = await m.embed("hello", { model: embeddingModel, dimensions: a.length + 1 }).catch((e) => e);
  assert.ok(wrong instanceof BadRequestError);
  assert.equal(wrong.param, "dimensions");
});

test("search finds the catalogue's items by meaning", { skip: noEmbeddings }, async () => {
  const m = client();
  // The server embeds new item text in the background: wait until the fixture is indexed.
  let hits = [];
  for (let i = 0; i < 100; i++) {
    hits = await m.search("a house lifted into the sky by balloons", { n: 3 });
    if (hits[0]?.item_id === "up") break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(hits[0].item_id, "up");
  assert.equal(hits[0].reason.kind, "search_match");
  assert.ok(hits.length <= 3);
  const mob = await m.search("gangsters and the mafia", { category: "Crime", n: 2 });
  assert.ok(mob.length > 0 && mob.every((r) => r.categories.includes("Crime")));
  const space = await m.search("creatures from outer space", { filter: "year < 2000", n: 1 });
  assert.deepEqual(
    space.map((r) => r.item_id),
    ["alien"],
  );
});
