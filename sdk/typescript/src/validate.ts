/**
 * Argument checks made before anything is sent.
 *
 * The server checks everything too; checking here as well means a mistake is reported where it
 * was made (a `TypeError` or `RangeError` naming the argument, thrown from the call) instead of as
 * a 4xx after a round trip — and, for chunked uploads, before any chunk is committed. The limits
 * are the server's: ids of 1–256 bytes without control characters, `n` of 1–1000, batches of at
 * most 10,000 elements.
 */

import type { JsonObject, TimestampInput } from "./types.js";

/** Longest id the server accepts, in UTF-8 bytes. */
export const MAX_ID_BYTES = 256;
/** Largest `n` a recommend route accepts (and most `exclude` ids / session items). */
export const MAX_RECOMMENDATIONS = 1000;
/** Most elements in one batch request (the server's default `max_batch`). */
export const MAX_BATCH = 10_000;
/** Largest page of a listing. */
export const MAX_PAGE = 1000;

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const encoder = new TextEncoder();

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `${typeof value} ${JSON.stringify(value) ?? String(value)}`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** A user, item or other id: a non-empty string of at most 256 bytes without control characters. */
export function checkId(name: string, value: unknown): string {
  if (typeof value !== "string") {
    throw new TypeError(`${name} must be a string id, got ${describe(value)}`);
  }
  if (value === "") throw new RangeError(`${name} must not be empty`);
  if (encoder.encode(value).length > MAX_ID_BYTES) {
    throw new RangeError(`${name} is longer than ${MAX_ID_BYTES} bytes`);
  }
  if (CONTROL.test(value)) throw new RangeError(`${name} must not contain control characters`);
  return value;
}

/**
 * An options object: `undefined` or a plain object whose keys are all known (a misspelt option
 * is an error, as unknown fields are on the server). Keys whose value is `undefined` are ignored.
 */
export function checkOptions<T extends object>(
  where: string,
  options: T | undefined,
  known: readonly string[],
): Partial<T> {
  if (options === undefined || options === null) return {};
  if (!isPlainObject(options)) {
    throw new TypeError(`${where}: options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key) && (options as Record<string, unknown>)[key] !== undefined) {
      throw new TypeError(`${where}: unknown option "${key}" (known: ${known.join(", ")})`);
    }
  }
  return options;
}

export function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(`${name} must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) throw new RangeError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

export function checkNumber(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new TypeError(`${name} must be a finite number, got ${describe(value)}`);
  }
  if (value < min || value > max) throw new RangeError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw new TypeError(`${name} must be a boolean, got ${describe(value)}`);
  return value;
}

export function checkString(name: string, value: unknown, { nonEmpty = true } = {}): string {
  if (typeof value !== "string") throw new TypeError(`${name} must be a string, got ${describe(value)}`);
  if (nonEmpty && value.trim() === "") throw new RangeError(`${name} must not be empty`);
  return value;
}

export function checkOneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new RangeError(`${name} must be one of ${allowed.map((a) => `"${a}"`).join(", ")}, got ${describe(value)}`);
  }
  return value as T;
}

export function checkStringArray(name: string, value: unknown): string[] {
  if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of strings, got ${describe(value)}`);
  value.forEach((v, i) => {
    if (typeof v !== "string") throw new TypeError(`${name}[${i}] must be a string, got ${describe(v)}`);
  });
  return value as string[];
}

export function checkIdArray(name: string, value: unknown, max: number): string[] {
  if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of ids, got ${describe(value)}`);
  if (value.length > max) throw new RangeError(`${name} has ${value.length} ids; at most ${max}`);
  value.forEach((v, i) => checkId(`${name}[${i}]`, v));
  return value as string[];
}

export function checkJsonObject(name: string, value: unknown): JsonObject {
  if (!isPlainObject(value)) throw new TypeError(`${name} must be a plain object, got ${describe(value)}`);
  return value as JsonObject;
}

/** RFC 3339 text, Unix seconds or a valid `Date` (sent as RFC 3339 by `JSON.stringify`). */
export function checkTimestamp(name: string, value: unknown): TimestampInput {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new RangeError(`${name} is an invalid Date`);
    return value;
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new RangeError(`${name} must be finite Unix seconds`);
    return value;
  }
  if (typeof value === "string") {
    if (value === "" || Number.isNaN(Date.parse(value))) {
      throw new RangeError(`${name} must be an RFC 3339 time, got ${JSON.stringify(value)}`);
    }
    return value;
  }
  throw new TypeError(`${name} must be an RFC 3339 string, Unix seconds or a Date, got ${describe(value)}`);
}

/** A positive chunk size for batch uploads (a server may be configured with a larger limit). */
export function checkChunkSize(name: string, value: unknown): number {
  return checkInteger(name, value, 1, Number.MAX_SAFE_INTEGER);
}
