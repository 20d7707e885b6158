/**
 * The shapes of Marquee's HTTP API, as the server sends and accepts them.
 *
 * Data (items, users, feedback, recommendations, profiles, usage) keeps the server's JSON field
 * names (`item_id`, `recommendation_id`, …) so that what you read here is what you see on the wire
 * and in the server's documentation — the way the `openai` package keeps OpenAI's names. Only the
 * options of the client's methods (`{ n, categoryMatch, excludeSeen }`) are camelCase, as
 * JavaScript arguments usually are. The Rust definitions these mirror are in `crates/types`.
 */

/** Any JSON value (item metadata, user attributes). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/** A time as the server writes it: RFC 3339 in UTC (`2026-11-30T09:26:48.528Z`). */
export type Timestamp = string;

/** A time as the server accepts it: an RFC 3339 string, Unix seconds, or a `Date`. */
export type TimestampInput = string | number | Date;

// ---------------------------------------------------------------------------------------------
// Items

/** An item as stored and returned. */
export interface Item {
  id: string;
  title: string | null;
  categories: string[];
  tags: string[];
  description: string | null;
  metadata: JsonObject;
  published_at: Timestamp | null;
  /** Outside `available_from`..`available_until` the item is not served. */
  available_from: Timestamp | null;
  available_until: Timestamp | null;
  /** Hidden items are never recommended. */
  hidden: boolean;
  updated_at: Timestamp;
}

/** An item as written (`PUT` replaces the whole item; `id` only in batch upserts). */
export interface ItemInput {
  id?: string;
  title?: string | null;
  categories?: string[];
  tags?: string[];
  description?: string | null;
  /** Any JSON object; its keys can be used in recommendation filters (`year >= 1990`). */
  metadata?: JsonObject | null;
  published_at?: TimestampInput | null;
  available_from?: TimestampInput | null;
  available_until?: TimestampInput | null;
  hidden?: boolean;
}

/** A partial update: only the fields given change; `null` clears an optional field. */
export interface ItemPatch {
  title?: string | null;
  categories?: string[];
  tags?: string[];
  description?: string | null;
  metadata?: JsonObject;
  published_at?: TimestampInput | null;
  available_from?: TimestampInput | null;
  available_until?: TimestampInput | null;
  hidden?: boolean;
}

/** One page of `GET /v1/items`; pass `next_cursor` back as `cursor` (null on the last page). */
export interface ItemPage {
  items: Item[];
  next_cursor: string | null;
}

// ---------------------------------------------------------------------------------------------
// Users and feedback

export interface User {
  id: string;
  attributes: JsonObject;
  updated_at: Timestamp;
}

/** A user as written in a batch upsert. */
export interface UserInput {
  id: string;
  attributes?: JsonObject;
}

export interface UserPage {
  users: User[];
  next_cursor: string | null;
}

/** A feedback event to send. */
export interface FeedbackInput {
  user_id: string;
  item_id: string;
  /**
   * Your vocabulary: `view`, `click`, `like`, `rating`, `purchase`, …; `dislike`, `skip`, `hide`
   * and `not_interested` count as "seen, not interested".
   */
  type: string;
  /** A rating or other strength. */
  value?: number | null;
  /** When it happened (the time of arrival when absent). */
  timestamp?: TimestampInput | null;
  /** The `recommendation_id` of the list the user acted on, for experiment attribution. */
  recommendation_id?: string | null;
}

/** A stored feedback event. */
export interface Feedback {
  user_id: string;
  item_id: string;
  type: string;
  value: number | null;
  timestamp: Timestamp;
}

/** What `DELETE /v1/users/{id}` did. */
export interface Erasure {
  user_id: string;
  events_deleted: number;
  erased_at: Timestamp;
  /** The trained model carries the user's influence until this retrain finishes. */
  retrain_requested: boolean;
}

/** Everything held about a user (`GET /v1/users/{id}/export`). */
export interface UserExport {
  user_id: string;
  attributes: JsonObject | null;
  updated_at: Timestamp | null;
  feedback: { item_id: string; type: string; value: number | null; timestamp: Timestamp }[];
  exported_at: Timestamp;
}

// ---------------------------------------------------------------------------------------------
// Recommendations and profiles

/** Why an item was recommended. */
export interface Reason {
  /**
   * `because_you_engaged`, `similar_to_context`, `similar_item`, `new_item`, `popular`,
   * `trending`, `exploration`, `search_match`.
   */
  kind: string;
  /** The items this reason refers to (history items that contributed most, or the context item). */
  items?: string[];
  /** The same in words, for display. */
  message: string;
}

/** One recommended item. */
export interface Recommendation {
  item_id: string;
  title: string | null;
  score: number;
  reason: Reason;
  categories: string[];
  /** The same on every item of one list; send it back with feedback to attribute clicks. */
  recommendation_id: string;
  /** The experiment variant that produced the list, when the user is in an experiment. */
  variant: string | null;
}

/** A weighted category or tag a user is into. */
export interface Interest {
  kind: "category" | "tag";
  name: string;
  weight: number;
}

export interface HistoryEntry {
  item_id: string;
  title: string | null;
  type: string;
  value: number | null;
  timestamp: Timestamp;
}

/** `getUserData`: what a user is into, derived from their feedback. */
export interface UserProfile {
  user_id: string;
  /** The item the user engaged with (positively) most recently, if any. */
  item_id: string | null;
  /** Strongest first; weights sum to 1. */
  interests: Interest[];
  /** Most recent feedback first, with item titles. */
  history: HistoryEntry[];
  attributes: JsonObject;
}

// ---------------------------------------------------------------------------------------------
// Usage and invoices

/** A billable unit. */
export type Unit =
  | "recommendations"
  | "input_tokens"
  | "output_tokens"
  | "embedding_tokens"
  | "tts_characters"
  | "images"
  | "audio_milliseconds";

/** Non-zero units only. */
export type Units = Partial<Record<Unit, number>>;

export interface UsageLine {
  /** The day, key id, model, route or tenant; absent in totals. */
  group?: string;
  requests: number;
  units: Units;
  /** An exact decimal amount in `currency` (a string, never a float). */
  cost: string;
}

export interface UsageReport {
  object: "usage";
  tenant?: string;
  from: Timestamp;
  to: Timestamp;
  group_by?: UsageGroupBy;
  currency: string;
  data: UsageLine[];
  total: UsageLine;
}

export type UsageGroupBy = "day" | "key" | "model" | "route" | "tenant";

export interface InvoiceLine {
  route: string;
  model: string | null;
  requests: number;
  units: Units;
  amount: string;
}

export interface Invoice {
  object: "invoice";
  tenant: string;
  /** `2026-11`. */
  period: string;
  /** `open` while the month runs, `final` after it. */
  status: "open" | "final";
  from: Timestamp;
  to: Timestamp;
  currency: string;
  lines: InvoiceLine[];
  requests: number;
  units: Units;
  total: string;
}

// ---------------------------------------------------------------------------------------------
// Models (OpenAI-compatible)

export interface Embedding {
  object: "embedding";
  index: number;
  embedding: number[];
}

export interface EmbeddingResponse {
  object: "list";
  data: Embedding[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

export interface ChatMessage {
  role: "system" | "developer" | "user" | "assistant";
  content: string;
  name?: string;
}

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  system_fingerprint?: string;
  choices: {
    index: number;
    message: { role: "assistant"; content: string; refusal?: string | null };
    logprobs: null;
    finish_reason: "stop" | "length" | string;
  }[];
  usage: CompletionUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  system_fingerprint?: string;
  choices: {
    index: number;
    delta: { role?: "assistant"; content?: string };
    logprobs: null;
    finish_reason: "stop" | "length" | string | null;
  }[];
  usage?: CompletionUsage;
}
