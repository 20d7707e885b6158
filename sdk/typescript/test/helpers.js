// Shared by the test files: the server under test comes from the environment, which
// crates/cli/tests/sdk_typescript.rs sets after starting a real `marquee serve` and creating a
// tenant, its keys and a small catalogue (see that file for what the catalogue holds).

import { Marquee } from "../dist/index.js";

/** An environment variable the integration tests need; a clear failure when it is missing. */
export function env(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: these tests run against a real server; ` +
        "run `cargo test -p marquee-cli --test sdk_typescript`, which starts one and sets the variables",
    );
  }
  return value;
}

/** A client of the test server with the secret key; options override. */
export function client(options = {}) {
  return new Marquee({ baseUrl: env("MARQUEE_BASE_URL"), apiKey: env("MARQUEE_API_KEY"), ...options });
}

/** A `fetch` that records each request (method, url, headers) and answer before returning it. */
export function recordingFetch() {
  const calls = [];
  const fetchLike = async (url, init) => {
    const call = { url, method: init.method, headers: { ...init.headers }, at: Date.now() };
    calls.push(call);
    const response = await fetch(url, init);
    call.status = response.status;
    call.responseHeaders = response.headers;
    return response;
  };
  return { fetch: fetchLike, calls };
}

/** A suffix that keeps ids of this run apart from those of other runs and files. */
export const run = `${process.pid}-${Date.now().toString(36)}`;
