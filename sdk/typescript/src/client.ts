/**
 * The Marquee client: one object per base URL and key, with a method per API capability.
 *
 * Why it is built the way it is:
 * - **fetch only.** The same code runs in browsers, Node 20+, Deno, Bun and edge runtimes, with no
 *   runtime dependency; a custom `fetch` can be passed (to add headers, trace, or run in tests).
 * - **Browser-safe by key kind.** A publishable key (`mq_pk_…`) may only read recommendations and
 *   send feedback, so it can live in a web page; the server checks its `allowed_origins` against
 *   the page's `Origin`. Secret and admin keys are refused in a browser unless
 *   `dangerouslyAllowBrowser` is set, as the `openai` package does. The key is kept in a private
 *   field, so it never shows up in `console.log(client)`, `JSON.stringify` or error messages.
 * - **Retries that cannot do harm.** The rule shared with the Python and Rust SDKs (README,
 *   "Retries"): 429, 502, 503 and 504 answers and transport failures are retried, waiting at least
 *   what `retry-after-ms` or `Retry-After` asks (else exponential backoff with jitter) — but only
 *   for calls that cannot do anything twice when repeated: GET, HEAD, PUT, PATCH (which sets the
 *   fields given) and DELETE, and the POSTs in `RETRYABLE_POSTS` (feedback batches, keyed by user,
 *   item and type; item and user upserts; session recommendations, embeddings, speech,
 *   transcriptions and image classification, which change nothing). A chat completion is never
 *   retried: it would be generated, and billed, twice. `quota_exceeded`, `budget_exceeded` and a
 *   `Retry-After` beyond `maxRetryDelayMs` (a quota that resets next month) are thrown at once.
 * - **Checked arguments.** Ids, ranges and option names are checked before sending (see
 *   `validate.ts`), so a mistake throws where it is made and a chunked upload never stops half-way
 *   on input that was bad from the start.
 */

import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIUserAbortError,
  MarqueeError,
  errorFromResponse,
  parseRetryAfter,
} from "./errors.js";
import { parseServerSentEvents } from "./sse.js";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatMessage,
  CompletionUsage,
  EmbeddingResponse,
  Erasure,
  Feedback,
  FeedbackInput,
  Invoice,
  Item,
  ItemInput,
  ItemPage,
  ItemPatch,
  JsonObject,
  Recommendation,
  TimestampInput,
  UsageGroupBy,
  UsageReport,
  User,
  UserExport,
  UserInput,
  UserPage,
  UserProfile,
} from "./types.js";
import {
  MAX_BATCH,
  MAX_PAGE,
  MAX_RECOMMENDATIONS,
  checkBoolean,
  checkChunkSize,
  checkId,
  checkIdArray,
  checkInteger,
  checkJsonObject,
  checkNumber,
  checkOneOf,
  checkOptions,
  checkString,
  checkStringArray,
  checkTimestamp,
  isPlainObject,
} from "./validate.js";

/** The package version, sent nowhere (browsers forbid a custom User-Agent); for diagnostics. */
export const VERSION = "0.1.0";

/** The `fetch` signature the client needs (the global one, or a wrapper of it). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** Where the server is (`https://marquee.example.com`); default `MARQUEE_BASE_URL`, then `http://localhost:8080`. */
  baseUrl?: string;
  /** A publishable (`mq_pk_…`), secret (`mq_sk_…`) or admin key; default `MARQUEE_API_KEY`. */
  apiKey?: string;
  /** Per attempt: until the answer is read (for streams: longest silence). Default 60,000. */
  timeoutMs?: number;
  /** Retries of calls that may be repeated after 429, 502, 503, 504 or a transport failure. Default 2. */
  maxRetries?: number;
  /** Longest `Retry-After` worth waiting for; longer ones throw at once. Default 60,000. */
  maxRetryDelayMs?: number;
  /** A `fetch` to use instead of the global one. */
  fetch?: FetchLike;
  /** Headers added to every request. */
  headers?: Record<string, string>;
  /** Events per request in `sendFeedback`, items/users per request in upserts. Default 10,000 (the server's limit). */
  batchSize?: number;
  /**
   * Most bytes of JSON per request in `sendFeedback` and the upserts. Default 8 MiB (the server
   * refuses bodies over 10 MiB with 413).
   */
  maxBatchBytes?: number;
  /** Allow a secret or admin key in a browser, where any visitor could read it. Default false. */
  dangerouslyAllowBrowser?: boolean;
}

/** Per-call settings, the last argument of every method. */
export interface RequestOptions {
  /** Aborts the call (throws `APIUserAbortError`). */
  signal?: AbortSignal;
  timeoutMs?: number;
  maxRetries?: number;
  headers?: Record<string, string>;
}

/** The options every recommend route takes. */
export interface RecommendFilters {
  /** 1–1000 items (default 10). */
  n?: number;
  /** One or more categories (a string may list several, comma-separated); case-insensitive. */
  category?: string | string[];
  /** Items in `any` (default) or `all` of the categories. */
  categoryMatch?: "any" | "all";
  /** Item ids never to return. */
  exclude?: string[];
  /** Leave out what the user engaged with (default true). */
  excludeSeen?: boolean;
  /** An expression over item fields and metadata: `year >= 1990 AND NOT "Horror" IN categories`. */
  filter?: string;
  /** 0–1: re-rank for variety. */
  diversity?: number;
  /** At most this many items per primary category. */
  maxPerCategory?: number;
  /** 0–0.5: share of the list given to exploration picks. */
  exploration?: number;
}

export interface RecommendOptions extends RecommendFilters {
  /** Recommend in the context of this item ("what to watch after it"). */
  itemId?: string;
}

/** `search` takes the recommend filters that apply to a query. */
export interface SearchOptions {
  n?: number;
  category?: string | string[];
  categoryMatch?: "any" | "all";
  exclude?: string[];
  filter?: string;
  diversity?: number;
  maxPerCategory?: number;
}

export interface ListOptions {
  /** 1–1000 per page (default 100). */
  limit?: number;
  /** `next_cursor` of the previous page. */
  cursor?: string;
}

export interface IterateOptions {
  /** Items or users fetched per request (default 100, at most 1000). */
  pageSize?: number;
}

export interface BatchOptions {
  /** Elements per request (default: the client's `batchSize`). */
  chunkSize?: number;
  /** Bytes of JSON per request (default: the client's `maxBatchBytes`). */
  maxBatchBytes?: number;
}

export interface UsageOptions {
  from?: TimestampInput;
  to?: TimestampInput;
  groupBy?: UsageGroupBy;
  /** Operator keys only: one tenant's usage. */
  tenant?: string;
}

export interface EmbedOptions {
  /** An embedding model; the server's first one when absent. */
  model?: string;
  /** Must equal the model's dimensions (they cannot be shortened). */
  dimensions?: number;
  user?: string;
}

export interface ChatParams {
  model: string;
  messages: ChatMessage[];
  maxTokens?: number;
  /** 0–2 (default 1). */
  temperature?: number;
  /** (0, 1] (default 1). */
  topP?: number;
  /** Up to four stop sequences. */
  stop?: string | string[];
  seed?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  user?: string;
}

const FILTER_KEYS = [
  "n",
  "category",
  "categoryMatch",
  "exclude",
  "excludeSeen",
  "filter",
  "diversity",
  "maxPerCategory",
  "exploration",
] as const;
const SEARCH_KEYS = ["n", "category", "categoryMatch", "exclude", "filter", "diversity", "maxPerCategory"] as const;
const REQUEST_KEYS = ["signal", "timeoutMs", "maxRetries", "headers"] as const;
const CLIENT_KEYS = [
  "baseUrl",
  "apiKey",
  "timeoutMs",
  "maxRetries",
  "maxRetryDelayMs",
  "fetch",
  "headers",
  "batchSize",
  "maxBatchBytes",
  "dangerouslyAllowBrowser",
] as const;
const ITEM_KEYS = [
  "id",
  "title",
  "categories",
  "tags",
  "description",
  "metadata",
  "published_at",
  "available_from",
  "available_until",
  "hidden",
] as const;
const FEEDBACK_KEYS = ["user_id", "item_id", "type", "value", "timestamp", "recommendation_id"] as const;
const CHAT_KEYS = [
  "model",
  "messages",
  "maxTokens",
  "temperature",
  "topP",
  "stop",
  "seed",
  "frequencyPenalty",
  "presencePenalty",
  "user",
] as const;
const ROLES = ["system", "developer", "user", "assistant"] as const;

/** Recommend filters, checked, with the server's names and list values. */
interface Filters {
  n?: number;
  category?: string[];
  category_match?: "any" | "all";
  exclude?: string[];
  exclude_seen?: boolean;
  filter?: string;
  diversity?: number;
  max_per_category?: number;
  exploration?: number;
}

type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

interface Call {
  method: Method;
  path: string;
  query?: URLSearchParams;
  body?: unknown;
  /** The body already serialized as JSON (the chunked uploads size their chunks by it). */
  json?: string;
  /** `false` forbids sending it again; `true` allows it if {@link mayRepeat} does too. */
  idempotent: boolean;
}

/** The most bytes of JSON a chunked upload sends in one request (the server refuses bodies over 10 MiB). */
export const DEFAULT_MAX_BATCH_BYTES = 8 * 1024 * 1024;
const MIN_BATCH_BYTES = 16;

// The retry rule, the same in the Python, TypeScript and Rust SDKs (README, "Retries").
/** Answers worth sending a call again for: rate limited, or a gateway or server overloaded. */
const RETRY_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);
/** Exhausted until the billing period ends: waiting seconds will not help. */
const NO_RETRY_CODES: ReadonlySet<string> = new Set(["quota_exceeded", "budget_exceeded"]);
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "PUT", "PATCH", "DELETE"]);
/**
 * The POSTs that cannot do anything twice when repeated. Every other POST (chat completions,
 * training, key creation or rotation, experiments, item copy generation, …) is never retried.
 */
export const RETRYABLE_POSTS: ReadonlySet<string> = new Set([
  "/v1/feedback", // an event is keyed by (user, item, type): a batch sent twice leaves the same state
  "/v1/items", // upserts by id
  "/v1/users", // upserts by id
  "/v1/recommend/session", // a read
  "/v1/embeddings", // read-only computations, which store nothing
  "/v1/audio/speech",
  "/v1/audio/transcriptions",
  "/v1/images/classify",
]);

/**
 * Whether a call may be sent again after a retryable failure, transport failures included (a
 * request that failed on the way may still have reached the server).
 */
export function mayRepeat(call: { method: string; path: string; idempotent?: boolean }): boolean {
  if (call.idempotent === false) return false;
  const method = call.method.toUpperCase();
  if (IDEMPOTENT_METHODS.has(method)) return true;
  return method === "POST" && RETRYABLE_POSTS.has(call.path);
}

/** What the server asked (never less) plus up to 10 % (at most 250 ms) of jitter. */
export function retryWaitMs(askedSeconds: number): number {
  const ms = askedSeconds * 1000;
  return ms + Math.min(ms * 0.1, 250) * Math.random();
}

/** Bytes of a string in UTF-8, without encoding it. */
function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      // A surrogate pair: one code point of four bytes (JSON.stringify escapes lone surrogates).
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** How a streamed answer's reader controls the attempt's timer and learns why it was aborted. */
interface Attempt {
  controller: AbortController;
  timedOut: () => boolean;
  touch: () => void;
  done: () => void;
}

function readEnv(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const value = proc?.env?.[name];
  return value === undefined || value === "" ? undefined : value;
}

function inBrowser(): boolean {
  const g = globalThis as { window?: { document?: unknown }; importScripts?: unknown };
  return (
    (typeof g.window === "object" && g.window !== null && typeof g.window.document !== "undefined") ||
    typeof g.importScripts === "function"
  );
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new APIUserAbortError());
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new APIUserAbortError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Exponential backoff with jitter, without a `Retry-After`: 0.5 s, 1 s, 2 s, … up to 8 s, each 75–100 %. */
export function backoffMs(attempt: number): number {
  return Math.min(500 * 2 ** attempt, 8000) * (0.75 + Math.random() * 0.25);
}

/** A route with its ids percent-encoded: route`/v1/items/${id}/similar`. */
function route(parts: TemplateStringsArray, ...ids: string[]): string {
  return parts.reduce((out, part, i) => out + part + (i < ids.length ? encodeURIComponent(ids[i] as string) : ""), "");
}

function timestampParam(name: string, value: TimestampInput): string {
  checkTimestamp(name, value);
  if (value instanceof Date) return value.toISOString();
  // Query strings carry text: send Unix seconds as RFC 3339, which the server reads either way.
  if (typeof value === "number") return new Date(value * 1000).toISOString();
  return value;
}

function checkFilters(where: string, options: RecommendFilters | undefined, keys: readonly string[]): Filters {
  const o = checkOptions(where, options, keys);
  const out: Filters = {};
  if (o.n !== undefined) out.n = checkInteger("n", o.n, 1, MAX_RECOMMENDATIONS);
  if (o.category !== undefined) {
    const list = typeof o.category === "string" ? o.category.split(",") : checkStringArray("category", o.category);
    out.category = list
      .map((c, i) => {
        if (typeof o.category !== "string" && c.includes(",")) {
          throw new RangeError(`category[${i}] must not contain a comma (the server splits on commas)`);
        }
        return c.trim();
      })
      .filter((c) => c !== "");
  }
  if (o.categoryMatch !== undefined)
    out.category_match = checkOneOf("categoryMatch", o.categoryMatch, ["any", "all"] as const);
  if (o.exclude !== undefined) {
    out.exclude = checkIdArray("exclude", o.exclude, MAX_RECOMMENDATIONS);
  }
  if (o.excludeSeen !== undefined) out.exclude_seen = checkBoolean("excludeSeen", o.excludeSeen);
  if (o.filter !== undefined) out.filter = checkString("filter", o.filter);
  if (o.diversity !== undefined) out.diversity = checkNumber("diversity", o.diversity, 0, 1);
  if (o.maxPerCategory !== undefined) {
    out.max_per_category = checkInteger("maxPerCategory", o.maxPerCategory, 1, Number.MAX_SAFE_INTEGER);
  }
  if (o.exploration !== undefined) out.exploration = checkNumber("exploration", o.exploration, 0, 0.5);
  return out;
}

/** Filters as query parameters (lists comma-separated, as the server reads them). */
function filterQuery(f: Filters): URLSearchParams {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(f) as [string, unknown][]) {
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      if (key === "exclude") {
        value.forEach((id: string, i) => {
          if (id.includes(",")) {
            throw new RangeError(
              `exclude[${i}] contains a comma, which a query string cannot carry; use session() or another id`,
            );
          }
        });
      }
      if (value.length > 0) q.set(key, value.join(","));
    } else {
      q.set(key, String(value));
    }
  }
  return q;
}

function checkRequestOptions(options: RequestOptions | undefined): RequestOptions {
  const o = checkOptions("request options", options, REQUEST_KEYS);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new TypeError("signal must be an AbortSignal");
  }
  if (o.timeoutMs !== undefined) checkInteger("timeoutMs", o.timeoutMs, 1, 2_147_483_647);
  if (o.maxRetries !== undefined) checkInteger("maxRetries", o.maxRetries, 0, 100);
  if (o.headers !== undefined) checkHeaders("headers", o.headers);
  return o;
}

function checkHeaders(name: string, headers: unknown): Record<string, string> {
  if (!isPlainObject(headers)) throw new TypeError(`${name} must be an object of header names to strings`);
  for (const [k, v] of Object.entries(headers)) {
    if (typeof v !== "string") throw new TypeError(`${name}["${k}"] must be a string`);
  }
  return headers as Record<string, string>;
}

function checkItemFields(where: string, item: unknown, { patch }: { patch: boolean }): void {
  if (!isPlainObject(item)) throw new TypeError(`${where} must be a plain object`);
  const keys = patch ? ITEM_KEYS.filter((k) => k !== "id") : ITEM_KEYS;
  checkOptions(where, item, keys);
  const nullable = (k: string, check: (name: string, v: unknown) => unknown) => {
    const v = item[k];
    if (v !== undefined && v !== null) check(`${where}.${k}`, v);
  };
  if (item.id !== undefined) checkId(`${where}.id`, item.id);
  nullable("title", (n, v) => checkString(n, v, { nonEmpty: false }));
  nullable("description", (n, v) => checkString(n, v, { nonEmpty: false }));
  for (const k of ["categories", "tags"]) {
    if (item[k] !== undefined) checkStringArray(`${where}.${k}`, item[k]);
  }
  if (patch && item.metadata === null) {
    throw new TypeError(`${where}.metadata cannot be null in a patch; send {} to clear it`);
  }
  nullable("metadata", checkJsonObject);
  for (const k of ["published_at", "available_from", "available_until"]) nullable(k, checkTimestamp);
  if (item.hidden !== undefined) checkBoolean(`${where}.hidden`, item.hidden);
}

function checkFeedback(where: string, e: unknown): void {
  if (!isPlainObject(e)) throw new TypeError(`${where} must be a feedback object`);
  checkOptions(where, e, FEEDBACK_KEYS);
  checkId(`${where}.user_id`, e.user_id);
  checkId(`${where}.item_id`, e.item_id);
  checkString(`${where}.type`, e.type);
  if (e.value !== undefined && e.value !== null) {
    checkNumber(`${where}.value`, e.value, -Number.MAX_VALUE, Number.MAX_VALUE);
  }
  if (e.timestamp !== undefined && e.timestamp !== null) checkTimestamp(`${where}.timestamp`, e.timestamp);
  if (e.recommendation_id !== undefined && e.recommendation_id !== null) {
    checkString(`${where}.recommendation_id`, e.recommendation_id);
  }
}

function checkUserInput(where: string, u: unknown): void {
  if (!isPlainObject(u)) throw new TypeError(`${where} must be a user object`);
  checkOptions(where, u, ["id", "attributes"]);
  checkId(`${where}.id`, u.id);
  if (u.attributes !== undefined) checkJsonObject(`${where}.attributes`, u.attributes);
}

function chatBody(params: ChatParams, stream: boolean): Record<string, unknown> {
  if (!isPlainObject(params)) throw new TypeError("chat: params must be an object with model and messages");
  const p = checkOptions("chat", params, CHAT_KEYS);
  const model = checkString("model", p.model);
  if (!Array.isArray(p.messages) || p.messages.length === 0) {
    throw new TypeError("messages must be a non-empty array of {role, content}");
  }
  if (p.messages.length > 1000) throw new RangeError("messages: at most 1000 messages");
  p.messages.forEach((m, i) => {
    if (!isPlainObject(m)) throw new TypeError(`messages[${i}] must be an object {role, content}`);
    checkOptions(`messages[${i}]`, m, ["role", "content", "name"]);
    checkOneOf(`messages[${i}].role`, m.role, ROLES);
    checkString(`messages[${i}].content`, m.content, { nonEmpty: false });
    if (m.name !== undefined) checkString(`messages[${i}].name`, m.name);
  });
  const body: Record<string, unknown> = { model, messages: p.messages };
  if (p.maxTokens !== undefined) body.max_tokens = checkInteger("maxTokens", p.maxTokens, 1, Number.MAX_SAFE_INTEGER);
  if (p.temperature !== undefined) body.temperature = checkNumber("temperature", p.temperature, 0, 2);
  if (p.topP !== undefined) {
    body.top_p = checkNumber("topP", p.topP, 0, 1);
    if (p.topP === 0) throw new RangeError("topP must be greater than 0");
  }
  if (p.stop !== undefined) {
    const stop = typeof p.stop === "string" ? [p.stop] : checkStringArray("stop", p.stop);
    if (stop.length > 4) throw new RangeError("stop: at most 4 sequences");
    body.stop = p.stop;
  }
  if (p.seed !== undefined) body.seed = checkInteger("seed", p.seed, 0, Number.MAX_SAFE_INTEGER);
  if (p.frequencyPenalty !== undefined) {
    body.frequency_penalty = checkNumber("frequencyPenalty", p.frequencyPenalty, -2, 2);
  }
  if (p.presencePenalty !== undefined) body.presence_penalty = checkNumber("presencePenalty", p.presencePenalty, -2, 2);
  if (p.user !== undefined) body.user = checkString("user", p.user);
  if (stream) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  return body;
}

/**
 * A streamed chat completion: iterate it for the text as it is generated.
 *
 * ```ts
 * const stream = client.chatStream({ model: "smollm2-135m-instruct", messages });
 * for await (const text of stream) process.stdout.write(text);
 * console.log(stream.finishReason, stream.usage);
 * ```
 *
 * The request is sent when iteration starts; errors (a 404 model, a 429) are thrown from the
 * loop. Leaving the loop early closes the connection, which stops the generation on the server.
 * A stream can be iterated once.
 */
export class ChatStream implements AsyncIterable<string> {
  /** `chatcmpl-…`, once the first chunk arrived. */
  id: string | undefined = undefined;
  model: string | undefined = undefined;
  /** `stop` or `length`, once the last chunk arrived. */
  finishReason: string | null = null;
  /** Token counts, once the stream ended. */
  usage: CompletionUsage | undefined = undefined;
  #open: (() => Promise<{ response: Response; attempt: Attempt }>) | undefined;
  #signal: AbortSignal | undefined;

  /** @internal */
  constructor(open: () => Promise<{ response: Response; attempt: Attempt }>, signal: AbortSignal | undefined) {
    this.#open = open;
    this.#signal = signal;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<string, void, undefined> {
    const open = this.#open;
    if (open === undefined) throw new TypeError("a ChatStream can be iterated only once");
    this.#open = undefined;
    const { response, attempt } = await open();
    let sawDone = false;
    try {
      if (response.body === null) throw new APIConnectionError("The answer has no body.");
      for await (const event of parseServerSentEvents(response.body, attempt.touch)) {
        if (event.data === "[DONE]") {
          sawDone = true;
          break;
        }
        let chunk: ChatCompletionChunk | { error: unknown };
        try {
          chunk = JSON.parse(event.data) as ChatCompletionChunk | { error: unknown };
        } catch (cause) {
          throw new MarqueeError(`Unreadable stream event: ${event.data.slice(0, 200)}`, {
            code: "invalid_response",
            cause,
          });
        }
        if ("error" in chunk) {
          // The generation failed after the answer had started (status 200 already sent).
          throw errorFromResponse(500, chunk, response.headers);
        }
        this.id ??= chunk.id;
        this.model ??= chunk.model;
        if (chunk.usage) this.usage = chunk.usage;
        const choice = chunk.choices?.[0];
        if (choice?.finish_reason) this.finishReason = choice.finish_reason;
        const text = choice?.delta?.content;
        if (text) yield text;
      }
      if (!sawDone) throw new APIConnectionError("The stream ended before the completion finished.");
    } catch (e) {
      if (e instanceof MarqueeError) throw e;
      if (attempt.timedOut()) throw new APIConnectionTimeoutError("No data from the stream within the timeout.", e);
      if (this.#signal?.aborted) throw new APIUserAbortError(undefined, e);
      throw new APIConnectionError("The stream failed.", e);
    } finally {
      attempt.done();
    }
  }

  /** Reads the whole stream and returns the text. */
  async text(): Promise<string> {
    let out = "";
    for await (const t of this) out += t;
    return out;
  }
}

/**
 * A Marquee client.
 *
 * ```ts
 * const marquee = new Marquee({ baseUrl: "https://marquee.example.com", apiKey: "mq_pk_…" });
 * const recs = await marquee.recommend("ann", { n: 10, category: "Crime" });
 * await marquee.sendFeedback({ user_id: "ann", item_id: recs[0].item_id, type: "click",
 *                              recommendation_id: recs[0].recommendation_id });
 * ```
 */
export class Marquee {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  readonly maxRetryDelayMs: number;
  readonly batchSize: number;
  readonly maxBatchBytes: number;
  readonly #apiKey: string;
  readonly #fetch: FetchLike;
  readonly #headers: Record<string, string>;

  constructor(options: ClientOptions = {}) {
    const o = checkOptions("new Marquee", options, CLIENT_KEYS);
    const baseUrl = o.baseUrl ?? readEnv("MARQUEE_BASE_URL") ?? "http://localhost:8080";
    checkString("baseUrl", baseUrl);
    let parsed: URL;
    try {
      parsed = new URL(baseUrl);
    } catch {
      throw new TypeError(`baseUrl is not an absolute URL: ${JSON.stringify(baseUrl)}`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new TypeError(`baseUrl must be http or https, got ${parsed.protocol}`);
    }
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    const apiKey = o.apiKey ?? readEnv("MARQUEE_API_KEY");
    if (apiKey === undefined || typeof apiKey !== "string" || apiKey.trim() === "") {
      throw new TypeError("an API key is required: pass apiKey or set MARQUEE_API_KEY");
    }
    if (/[\s\u0000-\u001f]/.test(apiKey.trim()))
      throw new TypeError("apiKey contains whitespace or control characters");
    if (inBrowser() && !o.dangerouslyAllowBrowser && !apiKey.startsWith("mq_pk_")) {
      throw new MarqueeError(
        "Only a publishable key (mq_pk_…) belongs in a browser: anyone who opens the page can read a secret key. " +
          "Call Marquee from your server instead, or set dangerouslyAllowBrowser: true if you understand the risk.",
        { code: "secret_key_in_browser" },
      );
    }
    this.#apiKey = apiKey.trim();
    this.timeoutMs = o.timeoutMs === undefined ? 60_000 : checkInteger("timeoutMs", o.timeoutMs, 1, 2_147_483_647);
    this.maxRetries = o.maxRetries === undefined ? 2 : checkInteger("maxRetries", o.maxRetries, 0, 100);
    this.maxRetryDelayMs =
      o.maxRetryDelayMs === undefined ? 60_000 : checkInteger("maxRetryDelayMs", o.maxRetryDelayMs, 0, 2_147_483_647);
    this.batchSize = o.batchSize === undefined ? MAX_BATCH : checkChunkSize("batchSize", o.batchSize);
    this.maxBatchBytes =
      o.maxBatchBytes === undefined
        ? DEFAULT_MAX_BATCH_BYTES
        : checkInteger("maxBatchBytes", o.maxBatchBytes, MIN_BATCH_BYTES, Number.MAX_SAFE_INTEGER);
    if (o.fetch !== undefined && typeof o.fetch !== "function") throw new TypeError("fetch must be a function");
    const globalFetch = (globalThis as { fetch?: FetchLike }).fetch;
    if (o.fetch === undefined && typeof globalFetch !== "function") {
      throw new TypeError("no global fetch here: pass options.fetch (Node 20+ and browsers have one)");
    }
    // Called through globalThis so that browsers do not throw "Illegal invocation".
    this.#fetch = o.fetch ?? ((input, init) => (globalThis as unknown as { fetch: FetchLike }).fetch(input, init));
    this.#headers = o.headers === undefined ? {} : { ...checkHeaders("headers", o.headers) };
  }

  /** What `console.log` and `JSON.stringify` show: never the key. */
  toJSON(): Record<string, unknown> {
    return { baseUrl: this.baseUrl, timeoutMs: this.timeoutMs, maxRetries: this.maxRetries };
  }

  // -------------------------------------------------------------------------------------------
  // Recommendations

  /**
   * Recommendations for a user (`GET /v1/recommend/{user}`), or in the context of an item they
   * are looking at (`itemId`: `GET /v1/recommend/{user}/{item}`). An unknown user gets popular items.
   */
  async recommend(userId: string, options?: RecommendOptions, request?: RequestOptions): Promise<Recommendation[]> {
    checkId("userId", userId);
    const itemId = options?.itemId;
    const filters = checkFilters("recommend", options, [...FILTER_KEYS, "itemId"]);
    const to =
      itemId === undefined
        ? route`/v1/recommend/${userId}`
        : route`/v1/recommend/${userId}/${checkId("itemId", itemId)}`;
    return this.#json({ method: "GET", path: to, query: filterQuery(filters), idempotent: true }, request);
  }

  /** Items similar to an item (`GET /v1/items/{id}/similar`). */
  async similar(itemId: string, options?: RecommendFilters, request?: RequestOptions): Promise<Recommendation[]> {
    checkId("itemId", itemId);
    const filters = checkFilters("similar", options, FILTER_KEYS);
    return this.#json(
      { method: "GET", path: route`/v1/items/${itemId}/similar`, query: filterQuery(filters), idempotent: true },
      request,
    );
  }

  /** Popular items (`GET /v1/popular`). */
  async popular(options?: RecommendFilters, request?: RequestOptions): Promise<Recommendation[]> {
    const filters = checkFilters("popular", options, FILTER_KEYS);
    return this.#json({ method: "GET", path: "/v1/popular", query: filterQuery(filters), idempotent: true }, request);
  }

  /** Items trending now: last week against the four before (`GET /v1/trending`). */
  async trending(options?: RecommendFilters, request?: RequestOptions): Promise<Recommendation[]> {
    const filters = checkFilters("trending", options, FILTER_KEYS);
    return this.#json({ method: "GET", path: "/v1/trending", query: filterQuery(filters), idempotent: true }, request);
  }

  /**
   * Recommendations for an anonymous session from the items it engaged with, in any order
   * (`POST /v1/recommend/session`). Changes nothing on the server, so it is retried like a GET.
   */
  async session(items: string[], options?: RecommendFilters, request?: RequestOptions): Promise<Recommendation[]> {
    checkIdArray("items", items, MAX_RECOMMENDATIONS);
    const filters = checkFilters("session", options, FILTER_KEYS);
    return this.#json(
      { method: "POST", path: "/v1/recommend/session", body: { items, ...filters }, idempotent: true },
      request,
    );
  }

  /** Items whose text matches `query` in meaning (`GET /v1/search`; needs an embedding model on the server). */
  async search(query: string, options?: SearchOptions, request?: RequestOptions): Promise<Recommendation[]> {
    checkString("query", query);
    const filters = checkFilters("search", options, SEARCH_KEYS);
    const q = filterQuery(filters);
    q.set("q", query);
    return this.#json({ method: "GET", path: "/v1/search", query: q, idempotent: true }, request);
  }

  /**
   * What a user is into (`GET /v1/users/{id}/profile`): the item they engaged with most recently
   * (`item_id`), weighted `interests`, recent `history` with titles, and `attributes`.
   */
  async getUserData(userId: string, options?: { history?: number }, request?: RequestOptions): Promise<UserProfile> {
    checkId("userId", userId);
    const o = checkOptions("getUserData", options, ["history"]);
    const query = new URLSearchParams();
    if (o.history !== undefined) query.set("history", String(checkInteger("history", o.history, 1, 100)));
    return this.#json({ method: "GET", path: route`/v1/users/${userId}/profile`, query, idempotent: true }, request);
  }

  // -------------------------------------------------------------------------------------------
  // Feedback

  /**
   * Sends feedback events (`POST /v1/feedback`), in chunks of at most `chunkSize` (default the
   * server's limit of 10,000). All events are checked before the first chunk is sent. An event is
   * keyed by (user, item, type), so a retried chunk leaves the same state. If a chunk is refused,
   * the error's `batch` says how many events earlier chunks committed and where the chunk began.
   */
  async sendFeedback(
    events: FeedbackInput | FeedbackInput[],
    options?: BatchOptions,
    request?: RequestOptions,
  ): Promise<{ accepted: number }> {
    const list = Array.isArray(events) ? events : [events];
    list.forEach((e, i) => checkFeedback(Array.isArray(events) ? `events[${i}]` : "event", e));
    const what = Array.isArray(events) ? "events" : "event";
    const accepted = await this.#chunked("/v1/feedback", what, list, "accepted", options, request);
    return { accepted };
  }

  /** A user's feedback, newest first (`GET /v1/users/{id}/feedback`). */
  async userFeedback(userId: string, options?: { limit?: number }, request?: RequestOptions): Promise<Feedback[]> {
    checkId("userId", userId);
    const o = checkOptions("userFeedback", options, ["limit"]);
    const query = new URLSearchParams();
    if (o.limit !== undefined) query.set("limit", String(checkInteger("limit", o.limit, 1, MAX_PAGE)));
    const answer = await this.#json<{ feedback: Feedback[] }>(
      { method: "GET", path: route`/v1/users/${userId}/feedback`, query, idempotent: true },
      request,
    );
    return answer.feedback;
  }

  // -------------------------------------------------------------------------------------------
  // Items

  async getItem(itemId: string, request?: RequestOptions): Promise<Item> {
    checkId("itemId", itemId);
    return this.#json({ method: "GET", path: route`/v1/items/${itemId}`, idempotent: true }, request);
  }

  /** Creates or replaces an item (`PUT /v1/items/{id}`). */
  async putItem(
    itemId: string,
    item: Omit<ItemInput, "id"> & { id?: string },
    request?: RequestOptions,
  ): Promise<Item> {
    checkId("itemId", itemId);
    checkItemFields("item", item, { patch: false });
    if (item.id !== undefined && item.id !== itemId) {
      throw new RangeError(`item.id ${JSON.stringify(item.id)} differs from itemId ${JSON.stringify(itemId)}`);
    }
    const { id: _id, ...body } = item;
    return this.#json({ method: "PUT", path: route`/v1/items/${itemId}`, body, idempotent: true }, request);
  }

  /** Changes the fields given (`PATCH /v1/items/{id}`); `null` clears an optional field. */
  async patchItem(itemId: string, patch: ItemPatch, request?: RequestOptions): Promise<Item> {
    checkId("itemId", itemId);
    checkItemFields("patch", patch, { patch: true });
    return this.#json({ method: "PATCH", path: route`/v1/items/${itemId}`, body: patch, idempotent: true }, request);
  }

  /** Deletes an item; it is never recommended again once this returns. */
  async deleteItem(itemId: string, request?: RequestOptions): Promise<void> {
    checkId("itemId", itemId);
    await this.#json({ method: "DELETE", path: route`/v1/items/${itemId}`, idempotent: true }, request);
  }

  /** Creates or replaces many items (`POST /v1/items`), in chunks; returns how many were written. */
  async upsertItems(
    items: ItemInput[],
    options?: BatchOptions,
    request?: RequestOptions,
  ): Promise<{ upserted: number }> {
    if (!Array.isArray(items)) throw new TypeError("items must be an array");
    items.forEach((item, i) => {
      checkItemFields(`items[${i}]`, item, { patch: false });
      checkId(`items[${i}].id`, item.id);
    });
    return { upserted: await this.#chunked("/v1/items", "items", items, "upserted", options, request) };
  }

  /** One page of the catalogue (`GET /v1/items`), in id order. */
  async listItems(options?: ListOptions, request?: RequestOptions): Promise<ItemPage> {
    return this.#json(
      { method: "GET", path: "/v1/items", query: pageQuery("listItems", options), idempotent: true },
      request,
    );
  }

  /** Every item, following cursors: `for await (const item of client.iterItems()) …`. */
  async *iterItems(options?: IterateOptions, request?: RequestOptions): AsyncGenerator<Item, void, undefined> {
    const limit = pageSize("iterItems", options);
    let cursor: string | undefined;
    do {
      const page: ItemPage = await this.listItems(cursor === undefined ? { limit } : { limit, cursor }, request);
      yield* page.items;
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }

  // -------------------------------------------------------------------------------------------
  // Users

  async getUser(userId: string, request?: RequestOptions): Promise<User> {
    checkId("userId", userId);
    return this.#json({ method: "GET", path: route`/v1/users/${userId}`, idempotent: true }, request);
  }

  /** Creates or replaces a user and their attributes (`PUT /v1/users/{id}`). */
  async putUser(userId: string, attributes: JsonObject = {}, request?: RequestOptions): Promise<User> {
    checkId("userId", userId);
    checkJsonObject("attributes", attributes);
    return this.#json(
      { method: "PUT", path: route`/v1/users/${userId}`, body: { attributes }, idempotent: true },
      request,
    );
  }

  /** Sets the attributes given, keeping the others (`PATCH /v1/users/{id}`). */
  async patchUser(userId: string, attributes: JsonObject, request?: RequestOptions): Promise<User> {
    checkId("userId", userId);
    checkJsonObject("attributes", attributes);
    return this.#json(
      { method: "PATCH", path: route`/v1/users/${userId}`, body: { attributes }, idempotent: true },
      request,
    );
  }

  /** Erases a user: attributes, feedback, their place in results (`DELETE /v1/users/{id}`). */
  async deleteUser(userId: string, request?: RequestOptions): Promise<Erasure> {
    checkId("userId", userId);
    return this.#json({ method: "DELETE", path: route`/v1/users/${userId}`, idempotent: true }, request);
  }

  /** Everything held about a user (`GET /v1/users/{id}/export`; recorded in the audit log). */
  async exportUser(userId: string, request?: RequestOptions): Promise<UserExport> {
    checkId("userId", userId);
    return this.#json({ method: "GET", path: route`/v1/users/${userId}/export`, idempotent: true }, request);
  }

  /** Creates or replaces many users (`POST /v1/users`), in chunks. */
  async upsertUsers(
    users: UserInput[],
    options?: BatchOptions,
    request?: RequestOptions,
  ): Promise<{ upserted: number }> {
    if (!Array.isArray(users)) throw new TypeError("users must be an array");
    users.forEach((u, i) => checkUserInput(`users[${i}]`, u));
    return { upserted: await this.#chunked("/v1/users", "users", users, "upserted", options, request) };
  }

  async listUsers(options?: ListOptions, request?: RequestOptions): Promise<UserPage> {
    return this.#json(
      { method: "GET", path: "/v1/users", query: pageQuery("listUsers", options), idempotent: true },
      request,
    );
  }

  /** Every user, following cursors. */
  async *iterUsers(options?: IterateOptions, request?: RequestOptions): AsyncGenerator<User, void, undefined> {
    const limit = pageSize("iterUsers", options);
    let cursor: string | undefined;
    do {
      const page: UserPage = await this.listUsers(cursor === undefined ? { limit } : { limit, cursor }, request);
      yield* page.users;
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }

  // -------------------------------------------------------------------------------------------
  // Models (OpenAI-compatible routes)

  /** Embeds text (`POST /v1/embeddings`); `data[i].embedding` is the vector of `input[i]`. */
  async embed(input: string | string[], options?: EmbedOptions, request?: RequestOptions): Promise<EmbeddingResponse> {
    const texts = typeof input === "string" ? [input] : checkStringArray("input", input);
    if (texts.length === 0) throw new RangeError("input must not be empty");
    if (texts.length > 2048) throw new RangeError(`input has ${texts.length} texts; at most 2048`);
    texts.forEach((t, i) => {
      if (t === "") throw new RangeError(`input[${i}] is an empty string`);
    });
    const o = checkOptions("embed", options, ["model", "dimensions", "user"]);
    const body: Record<string, unknown> = { input };
    if (o.model !== undefined) body.model = checkString("model", o.model);
    if (o.dimensions !== undefined) body.dimensions = checkInteger("dimensions", o.dimensions, 1, 65_536);
    if (o.user !== undefined) body.user = checkString("user", o.user);
    // Embedding the same text again changes nothing but the bill of a request that failed anyway.
    return this.#json({ method: "POST", path: "/v1/embeddings", body, idempotent: true }, request);
  }

  /** A chat completion (`POST /v1/chat/completions`). Never retried: it would be generated twice. */
  async chat(params: ChatParams, request?: RequestOptions): Promise<ChatCompletion> {
    const body = chatBody(params, false);
    return this.#json({ method: "POST", path: "/v1/chat/completions", body, idempotent: false }, request);
  }

  /**
   * A streamed chat completion: an async iterable of the text as it is generated (see
   * {@link ChatStream}). Arguments are checked now (throwing synchronously); the request is sent
   * when iteration starts.
   */
  chatStream(params: ChatParams, request?: RequestOptions): ChatStream {
    const body = chatBody(params, true);
    const r = checkRequestOptions(request);
    const call: Call = { method: "POST", path: "/v1/chat/completions", body, idempotent: false };
    return new ChatStream(() => this.#send(call, r, true), r.signal);
  }

  // -------------------------------------------------------------------------------------------
  // Usage

  /** What the key's tenant used in a window (default: the current billing period), summed from the ledger. */
  async usage(options?: UsageOptions, request?: RequestOptions): Promise<UsageReport> {
    const o = checkOptions("usage", options, ["from", "to", "groupBy", "tenant"]);
    const query = new URLSearchParams();
    if (o.from !== undefined) query.set("from", timestampParam("from", o.from));
    if (o.to !== undefined) query.set("to", timestampParam("to", o.to));
    if (o.groupBy !== undefined) {
      query.set("group_by", checkOneOf("groupBy", o.groupBy, ["day", "key", "model", "route", "tenant"] as const));
    }
    if (o.tenant !== undefined) query.set("tenant", checkString("tenant", o.tenant));
    return this.#json({ method: "GET", path: "/v1/usage", query, idempotent: true }, request);
  }

  /** A month's invoice (`2026-11`): lines per route and model, summed from the ledger. */
  async invoice(month: string, request?: RequestOptions): Promise<Invoice> {
    if (typeof month !== "string" || !/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) {
      throw new RangeError(`month must look like "2026-11", got ${JSON.stringify(month)}`);
    }
    return this.#json({ method: "GET", path: route`/v1/invoices/${month}`, idempotent: true }, request);
  }

  // -------------------------------------------------------------------------------------------
  // Transport

  /** Sends a call and decodes its JSON answer (`undefined` for 204). */
  async #json<T>(call: Call, request: RequestOptions | undefined): Promise<T> {
    const r = checkRequestOptions(request);
    const { value } = await this.#send(call, r, false);
    return value as T;
  }

  /**
   * Sends `elements` in chunks to a batch route, summing the answers' `field`. A chunk holds at
   * most `chunkSize` elements and `maxBatchBytes` bytes of JSON: it is cut before the element that
   * would take it over either. An element too large to send even alone throws before anything is
   * sent.
   */
  async #chunked(
    to: string,
    what: string,
    elements: unknown[],
    field: "accepted" | "upserted",
    options: BatchOptions | undefined,
    request: RequestOptions | undefined,
  ): Promise<number> {
    const o = checkOptions("batch options", options, ["chunkSize", "maxBatchBytes"]);
    const size = o.chunkSize === undefined ? this.batchSize : checkChunkSize("chunkSize", o.chunkSize);
    const maxBytes =
      o.maxBatchBytes === undefined
        ? this.maxBatchBytes
        : checkInteger("maxBatchBytes", o.maxBatchBytes, MIN_BATCH_BYTES, Number.MAX_SAFE_INTEGER);
    const r = checkRequestOptions(request);
    const parts = elements.map((e) => JSON.stringify(e));
    const bytes = parts.map(utf8Length);
    bytes.forEach((n, i) => {
      if (n + 2 > maxBytes) {
        const name = what === "event" ? "event" : `${what}[${i}]`;
        throw new RangeError(
          `${name} is ${n} bytes of JSON: alone, it is over the ${maxBytes} bytes a request may carry ` +
            "(maxBatchBytes; the server refuses bodies over its limit, 10 MiB by default)",
        );
      }
    });
    let total = 0;
    let offset = 0;
    while (offset < parts.length) {
      // "[", the elements, the commas between them, "]".
      let end = offset + 1;
      let used = 2 + (bytes[offset] as number);
      while (end < parts.length && end - offset < size && used + 1 + (bytes[end] as number) <= maxBytes) {
        used += 1 + (bytes[end] as number);
        end++;
      }
      const json = `[${parts.slice(offset, end).join(",")}]`;
      try {
        const { value } = await this.#send({ method: "POST", path: to, json, idempotent: true }, r, false);
        const n = (value as Record<string, unknown> | undefined)?.[field];
        total += typeof n === "number" ? n : end - offset;
      } catch (e) {
        if (e instanceof MarqueeError) e.batch = { offset, committed: total };
        throw e;
      }
      offset = end;
    }
    return total;
  }

  /**
   * One call with its retries. Resolves with the decoded answer, or (`stream`) with the open
   * response and the attempt whose timer the stream reader keeps alive.
   */
  #send(call: Call, r: RequestOptions, stream: true): Promise<{ response: Response; attempt: Attempt }>;
  #send(call: Call, r: RequestOptions, stream: false): Promise<{ value: unknown }>;
  async #send(
    call: Call,
    r: RequestOptions,
    stream: boolean,
  ): Promise<{ value: unknown } | { response: Response; attempt: Attempt }> {
    const query = call.query?.toString();
    const url = `${this.baseUrl}${call.path}${query ? `?${query}` : ""}`;
    const headers: Record<string, string> = {
      ...this.#headers,
      ...r.headers,
      authorization: `Bearer ${this.#apiKey}`,
      accept: stream ? "text/event-stream" : "application/json",
    };
    const init: RequestInit = { method: call.method, headers };
    if (call.json !== undefined || call.body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = call.json ?? JSON.stringify(call.body);
    }
    const maxRetries = r.maxRetries ?? this.maxRetries;
    const timeoutMs = r.timeoutMs ?? this.timeoutMs;
    const repeatable = mayRepeat(call);
    for (let attempt = 0; ; attempt++) {
      const retriesLeft = repeatable && attempt < maxRetries;
      const a = startAttempt(timeoutMs, r.signal);
      let failure: MarqueeError;
      try {
        const response = await this.#fetch(url, { ...init, signal: a.controller.signal });
        if (response.ok && stream) return { response, attempt: a };
        const text = await response.text();
        a.done();
        const body = decode(text, response.headers);
        if (response.ok) {
          // Every success this client asks for is JSON (or empty): anything else is a proxy's
          // page or a wrong baseUrl, not an answer to hand back as data.
          if (body.error !== undefined || typeof body.value === "string") {
            throw new MarqueeError(`The server's answer is not JSON: ${text.slice(0, 200)}`, {
              status: response.status,
              code: "invalid_response",
              cause: body.error,
              requestId: response.headers.get("x-request-id") ?? undefined,
            });
          }
          return { value: body.value };
        }
        failure = errorFromResponse(response.status, body.value, response.headers);
        if (!retriesLeft || !RETRY_STATUSES.has(response.status) || NO_RETRY_CODES.has(failure.code)) throw failure;
        const after = parseRetryAfter(response.headers);
        if (after !== undefined && after * 1000 > this.maxRetryDelayMs) throw failure;
        // At least what the server asked for, plus a little so that clients told the same
        // moment do not all come back at once.
        await sleep(after !== undefined ? retryWaitMs(after) : backoffMs(attempt), r.signal);
        continue;
      } catch (e) {
        a.done();
        if (e instanceof MarqueeError) throw e;
        if (r.signal?.aborted) throw new APIUserAbortError(undefined, e);
        failure = a.timedOut()
          ? new APIConnectionTimeoutError(`Request timed out after ${timeoutMs} ms.`, e)
          : new APIConnectionError(`Connection error: ${e instanceof Error ? e.message : String(e)}`, e);
        if (!retriesLeft) throw failure;
      }
      await sleep(backoffMs(attempt), r.signal);
    }
  }
}

function startAttempt(timeoutMs: number, signal: AbortSignal | undefined): Attempt {
  const controller = new AbortController();
  let timedOut = false;
  const onAbort = () => controller.abort(signal?.reason);
  if (signal?.aborted) controller.abort(signal.reason);
  else signal?.addEventListener("abort", onAbort, { once: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error("timeout"));
    }, timeoutMs);
  };
  arm();
  return {
    controller,
    timedOut: () => timedOut,
    touch: arm,
    done: () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      signal?.removeEventListener("abort", onAbort);
    },
  };
}

/** An answer's body: JSON when it says so (or looks like it), else the text; empty is `undefined`. */
function decode(text: string, headers: Headers): { value: unknown; error?: unknown } {
  if (text === "") return { value: undefined };
  const type = headers.get("content-type") ?? "";
  if (type.includes("json") || /^\s*[[{]/.test(text)) {
    try {
      return { value: JSON.parse(text) as unknown };
    } catch (error) {
      return { value: text, error };
    }
  }
  return { value: text };
}

function pageQuery(where: string, options: ListOptions | undefined): URLSearchParams {
  const o = checkOptions(where, options, ["limit", "cursor"]);
  const q = new URLSearchParams();
  if (o.limit !== undefined) q.set("limit", String(checkInteger("limit", o.limit, 1, MAX_PAGE)));
  if (o.cursor !== undefined) q.set("cursor", checkString("cursor", o.cursor));
  return q;
}

function pageSize(where: string, options: IterateOptions | undefined): number {
  const o = checkOptions(where, options, ["pageSize"]);
  return o.pageSize === undefined ? 100 : checkInteger("pageSize", o.pageSize, 1, MAX_PAGE);
}
