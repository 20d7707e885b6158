/**
 * A Server-Sent Events reader (the `text/event-stream` format of the HTML standard), for the
 * streamed chat completions of `/v1/chat/completions`.
 *
 * Written here rather than taken from a package so that the SDK has no runtime dependencies and
 * runs unchanged in browsers and Node: it reads a `ReadableStream<Uint8Array>` (a fetch body) with
 * its reader (async iteration of streams is missing in some browsers), decodes UTF-8 across chunk
 * boundaries (a multi-byte character may be split between two reads), accepts CRLF, LF and CR line
 * ends (a CRLF split between reads counts once), skips comments (the server's keep-alives), and
 * joins multi-line `data:` fields with newlines.
 */

/** One dispatched event. */
export interface ServerSentEvent {
  /** `message` unless the event named another type. */
  event: string;
  data: string;
  /** The last event id seen (`id:` field), if any. */
  id: string | undefined;
}

/** Parses an event stream into its events, in order. */
export async function* parseServerSentEvents(
  body: ReadableStream<Uint8Array>,
  onChunk?: () => void,
): AsyncGenerator<ServerSentEvent, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  const parser = new EventParser();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      onChunk?.();
      yield* parser.push(decoder.decode(value, { stream: true }), false);
    }
    yield* parser.push(decoder.decode(), true);
    finished = true;
  } finally {
    if (!finished) {
      // The consumer stopped early (break, throw) or reading failed: close the connection so the
      // server stops generating.
      await reader.cancel().catch(() => {});
    }
    reader.releaseLock();
  }
}

/** The line and field state machine, fed with decoded text. */
class EventParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private lastId: string | undefined = undefined;

  *push(text: string, end: boolean): Generator<ServerSentEvent> {
    this.buffer += text;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (match === null) break;
      // A CR at the very end may be the first half of a CRLF split between reads.
      if (match[0] === "\r" && match.index === this.buffer.length - 1 && !end) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = this.line(line);
      if (event) yield event;
    }
    if (end) {
      // A last line without a line end is still a line; an event not followed by a blank line
      // is incomplete and, per the standard, discarded.
      if (this.buffer !== "") {
        this.line(this.buffer);
        this.buffer = "";
      }
    }
  }

  private line(line: string): ServerSentEvent | undefined {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return undefined;
      }
      const event: ServerSentEvent = {
        event: this.event === "" ? "message" : this.event,
        data: this.data.join("\n"),
        id: this.lastId,
      };
      this.data = [];
      this.event = "";
      return event;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      default:
        // `retry` and unknown fields do not matter to a one-shot stream.
        break;
    }
    return undefined;
  }
}
