/**
 * Errors the client throws.
 *
 * Every failure of a call is a {@link MarqueeError}: the server's own answer (`status`, `code`,
 * `message`, `param`, exactly as sent in `{"error": {...}}`) as one subclass per status, the way
 * the `openai` package names them, so callers can `catch (e) { if (e instanceof RateLimitError) … }`;
 * or a transport failure ({@link APIConnectionError}, {@link APIConnectionTimeoutError},
 * {@link APIUserAbortError}) with no status. Arguments that are wrong before anything is sent are
 * plain `TypeError`s (wrong type, unknown option) and `RangeError`s (a value out of range), so
 * programming mistakes are not confused with what the server said.
 *
 * No error ever carries the API key: it is neither in messages nor in the kept headers (those are
 * the response's).
 */

/** The error body Marquee (and OpenAI) send: `{"error": {"code", "message", "type", "param"}}`. */
export interface ErrorBody {
  code?: string | null;
  message?: string;
  type?: string | null;
  param?: string | null;
}

/** Where a chunked upload stopped: what earlier chunks committed, and where the failing chunk began. */
export interface BatchProgress {
  /** Index, in the whole input, of the first element of the chunk the server refused. */
  offset: number;
  /** Elements committed by the chunks before it (they stay committed). */
  committed: number;
}

/** Base class of every error this package throws for a call. */
export class MarqueeError extends Error {
  /** HTTP status; `undefined` when no answer came (connection failure, timeout, abort). */
  readonly status: number | undefined;
  /** Machine-readable code from the server (`not_found`, `rate_limit_exceeded`, …) or the client. */
  readonly code: string;
  /** The request field at fault, when the server named one (OpenAI's `param`). */
  readonly param: string | null;
  /** `invalid_request_error`, `authentication_error`, …, `server_error`, as the server classed it. */
  readonly type: string | null;
  /** The `x-request-id` of the answer, to quote in a support request or find in the server log. */
  readonly requestId: string | undefined;
  /** Seconds the server asked to wait (`Retry-After`), when it did. */
  readonly retryAfter: number | undefined;
  /** The answer's headers, when there was an answer. */
  readonly headers: Headers | undefined;
  /** For chunked uploads ({@link Marquee.sendFeedback}, `upsertItems`, `upsertUsers`): progress made. */
  batch: BatchProgress | undefined;

  constructor(
    message: string,
    init: {
      status?: number | undefined;
      code: string;
      param?: string | null | undefined;
      type?: string | null | undefined;
      requestId?: string | undefined;
      retryAfter?: number | undefined;
      headers?: Headers | undefined;
      cause?: unknown;
    },
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.status = init.status;
    this.code = init.code;
    this.param = init.param ?? null;
    this.type = init.type ?? null;
    this.requestId = init.requestId;
    this.retryAfter = init.retryAfter;
    this.headers = init.headers;
    this.batch = undefined;
  }
}

/** 400: the request is malformed (also OpenAI-style model route validation errors). */
export class BadRequestError extends MarqueeError {}
/** 401: missing, unknown, revoked or expired key. */
export class AuthenticationError extends MarqueeError {}
/** 403: the key may not do this (`missing_scope`, `model_not_allowed`, `origin_not_allowed`, …). */
export class PermissionDeniedError extends MarqueeError {}
/** 404: no such item, user, model or route. */
export class NotFoundError extends MarqueeError {}
/** 409: conflicts with the current state (an experiment already running, a duplicate tenant). */
export class ConflictError extends MarqueeError {}
/** 422: well-formed but invalid (a bad filter expression, `n` out of range, a bad batch element). */
export class UnprocessableEntityError extends MarqueeError {}
/** 429: a rate limit, quota or budget; `retryAfter` says when to come back. */
export class RateLimitError extends MarqueeError {}
/** 5xx: the server failed or is unavailable (`model_unavailable`, `ledger_unavailable`, …). */
export class InternalServerError extends MarqueeError {}

/** No answer: the connection failed (refused, reset, DNS, CORS refusal in a browser). */
export class APIConnectionError extends MarqueeError {
  constructor(message = "Connection error.", cause?: unknown, code = "connection_error") {
    super(message, { code, cause });
  }
}

/** No answer within `timeoutMs` (for streams: no data for `timeoutMs`). */
export class APIConnectionTimeoutError extends APIConnectionError {
  constructor(message = "Request timed out.", cause?: unknown) {
    super(message, cause, "timeout");
  }
}

/** The caller's `AbortSignal` aborted the request. */
export class APIUserAbortError extends MarqueeError {
  constructor(message = "Request was aborted.", cause?: unknown) {
    super(message, { code: "aborted", cause });
  }
}

/** The class for an HTTP status, as the `openai` package maps them. */
function classFor(status: number): typeof MarqueeError {
  switch (status) {
    case 400:
      return BadRequestError;
    case 401:
      return AuthenticationError;
    case 403:
      return PermissionDeniedError;
    case 404:
      return NotFoundError;
    case 409:
      return ConflictError;
    case 422:
      return UnprocessableEntityError;
    case 429:
      return RateLimitError;
    default:
      return status >= 500 ? InternalServerError : MarqueeError;
  }
}

/**
 * Seconds to wait from `Retry-After` (seconds or an HTTP date) or OpenAI's `retry-after-ms`;
 * `undefined` when absent or unreadable.
 */
export function parseRetryAfter(headers: Headers | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get("retry-after-ms");
  if (ms !== null) {
    const n = Number(ms);
    if (Number.isFinite(n) && n >= 0) return n / 1000;
  }
  const value = headers.get("retry-after");
  if (value === null || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds : undefined;
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, (date - now) / 1000);
}

/**
 * The error for an HTTP answer that is not a success. `body` is the parsed JSON body when there
 * was one, else the text (a proxy's HTML page, say), kept short in the message.
 */
export function errorFromResponse(status: number, body: unknown, headers: Headers | undefined): MarqueeError {
  let detail: ErrorBody | undefined;
  if (body !== null && typeof body === "object" && "error" in body) {
    const e = (body as { error: unknown }).error;
    if (e !== null && typeof e === "object") detail = e as ErrorBody;
    else if (typeof e === "string") detail = { message: e };
  }
  let message = detail?.message;
  if (message === undefined || message === "") {
    message =
      typeof body === "string" && body.trim() !== ""
        ? `HTTP ${status}: ${body.trim().slice(0, 200)}`
        : `HTTP ${status}`;
  }
  const Class = classFor(status);
  return new Class(message, {
    status,
    code: detail?.code ?? (status >= 500 ? "server_error" : "http_error"),
    param: detail?.param ?? null,
    type: detail?.type ?? null,
    requestId: headers?.get("x-request-id") ?? undefined,
    retryAfter: parseRetryAfter(headers),
    headers,
  });
}
