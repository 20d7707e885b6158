/**
 * `@marquee/sdk`: the TypeScript/JavaScript client of Marquee.
 *
 * One class, {@link Marquee}, with a method per capability (recommendations, feedback,
 * catalogue and users, the OpenAI-compatible model routes, usage); the API's shapes as types; and
 * errors as classes by status. It uses only `fetch`, so it runs in browsers (with a publishable
 * key) and in Node 20+ (with any key), with no runtime dependencies.
 */

export {
  ChatStream,
  DEFAULT_MAX_BATCH_BYTES,
  Marquee,
  RETRYABLE_POSTS,
  VERSION,
  mayRepeat,
  type BatchOptions,
  type ChatParams,
  type ClientOptions,
  type EmbedOptions,
  type FetchLike,
  type IterateOptions,
  type ListOptions,
  type RecommendFilters,
  type RecommendOptions,
  type RequestOptions,
  type SearchOptions,
  type UsageOptions,
} from "./client.js";
export {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIUserAbortError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  InternalServerError,
  MarqueeError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  UnprocessableEntityError,
  type BatchProgress,
  type ErrorBody,
} from "./errors.js";
export type * from "./types.js";
export { MAX_BATCH, MAX_ID_BYTES, MAX_PAGE, MAX_RECOMMENDATIONS } from "./validate.js";
export { Marquee as default } from "./client.js";
