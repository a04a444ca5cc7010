// The wire format of docs/PROTOCOL.md, in one place: a header frame is one Cap'n Proto
// `Envelope` (schema/flame.capnp, compiled to gen/flame.js by `npm run gen`), and the rest of
// the library only sees plain objects: `{ kind: "submit", requestId: 1n, pool: "p", ... }`.
//
// UInt64 fields (request, job and child ids, instances) are BigInts; enums (`mode`, `code`) are
// the schema's numbers. decode() is the boundary for untrusted bytes: it never throws, it
// returns `{ error }` for a header it cannot read.
import { Message } from "capnp-es";
import * as schema from "../gen/flame.js";

export const PROTOCOL_VERSION = 1;
export const INFINITE_MS = 0xffffffff; // timeoutMs / budgetMs: no deadline
export const MAX_HEADER_BYTES = 64 * 1024;

export const Mode = schema.Mode; // { CALL, CAST, PLACE }
export const ErrorCode = schema.ErrorCode; // { NONE, BAD_REQUEST, UNKNOWN_POOL, ... }
export const EventKind = schema.EventKind; // { RUNNER_BOOTING, RUNNER_READY, ..., JOB_RETRIED }

// The C++ tools print error codes in snake_case (`unknown_pool`); so do we.
const codeNames = new Map(Object.entries(ErrorCode).map(([k, v]) => [v, k.toLowerCase()]));

// snake_case name of an error code number; a number we do not know is `internal` (PROTOCOL.md,
// "Error codes").
export function codeName(code) {
  return codeNames.get(code) ?? "internal";
}

const eventKindNames = new Map(Object.entries(EventKind).map(([k, v]) => [v, k.toLowerCase()]));

// snake_case name of an event kind number (`runner_ready`, `job_retried`, as `flame events`
// prints them); a kind this schema does not know yet (kinds are only added) is `unknown`.
export function eventKindName(kind) {
  return eventKindNames.get(kind) ?? "unknown";
}

// A failed request: `code` is the snake_case error code (`timeout`, `unknown_pool`, ...; the
// client adds `broker_unreachable` of its own), `jobId` the broker's job id when one was made.
export class FlameError extends Error {
  constructor(code, message, { jobId = 0n } = {}) {
    super(message ? `${code}: ${message}` : code);
    this.name = "FlameError";
    this.code = code;
    this.jobId = jobId;
  }
}

// Body kinds in schema order: "submit", "cancel", "stopChild", ...
const camel = (s) => s.toLowerCase().replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const kinds = new Map(Object.entries(schema.Envelope_Body_Which).map(([k, v]) => [v, camel(k)]));
const capitalized = (s) => s[0].toUpperCase() + s.slice(1);

// Encodes one Envelope holding `fields` as the body member `kind`. Array fields become lists
// (of text, or of structs given as objects); a body's own `kind` field is given as
// `eventKind` (as decode() returns it). Returns a Buffer to send as the header frame.
export function encode(kind, fields = {}) {
  if (`${kind}Kind` in fields) {
    const { [`${kind}Kind`]: own, ...rest } = fields;
    fields = { ...rest, kind: own };
  }
  const message = new Message();
  const envelope = message.initRoot(schema.Envelope);
  envelope.version = PROTOCOL_VERSION;
  fill(envelope.body[`_init${capitalized(kind)}`](), fields);
  return Buffer.from(message.toArrayBuffer());
}

function fill(struct, fields) {
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    if (!Array.isArray(value)) {
      struct[name] = value;
      continue;
    }
    const list = struct[`_init${capitalized(name)}`](value.length);
    value.forEach((item, i) => (typeof item === "object" ? fill(list.get(i), item) : list.set(i, item)));
  }
}

// Reads a header frame: `{ kind, version, ...fields }`, or `{ error }` when it is not a
// well-formed Envelope of this protocol version.
export function decode(frame) {
  if (!frame || frame.length === 0 || frame.length % 8 !== 0 || frame.length > MAX_HEADER_BYTES) {
    return { error: `header frame of ${frame?.length ?? 0} bytes (want a multiple of 8, at most 64 KiB)` };
  }
  const framing = checkFraming(frame);
  if (framing) return { error: framing };
  try {
    // A copy: capnp-es reads the ArrayBuffer it is given, and a Buffer's may be shared and
    // unaligned.
    const bytes = frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.length);
    const envelope = new Message(bytes, false).getRoot(schema.Envelope);
    const version = envelope.version;
    if (version !== PROTOCOL_VERSION) return { error: `protocol version ${version}, want ${PROTOCOL_VERSION}` };
    const kind = kinds.get(envelope.body.which());
    if (!kind) return { error: `unknown message kind ${envelope.body.which()}` };
    // Read everything now, inside the try: capnp-es reads lazily and throws on bad pointers.
    const fields = toPlain(envelope.body[kind], frame.length / 8);
    // `kind` names the message; a body's own `kind` field (Event's EventKind) is `eventKind`.
    if ("kind" in fields) {
      fields[`${kind}Kind`] = fields.kind;
      delete fields.kind;
    }
    return { kind, version, ...fields };
  } catch (e) {
    return { error: `undecodable header: ${e.message}` };
  }
}

// The standard framing (segment count - 1, each segment's size in words, padding to 8 bytes,
// the segments) must account for the frame exactly. Checked here, before capnp-es sees the
// bytes: capnp-es 0.0.16 allocates an array of the claimed segment count before it compares it
// with the frame's size, so 8 bytes of garbage could claim 4 billion segments.
function checkFraming(frame) {
  const segments = frame.readUInt32LE(0) + 1;
  const tableBytes = (4 + 4 * segments + 7) & ~7;
  if (segments > 64 || tableBytes > frame.length) return `segment table claims ${segments} segments`;
  let total = tableBytes;
  for (let i = 0; i < segments; i++) total += frame.readUInt32LE(4 + 4 * i) * 8;
  return total === frame.length ? null : `segment table claims ${total} bytes, the frame has ${frame.length}`;
}

// A struct reader as a plain object: every public getter of its class; lists become arrays.
// `maxItems` (the header's size in words) refuses lists that claim more elements than the
// header could hold: every list in our schema takes at least one word per element, so a longer
// one is a crafted message that would make us build millions of objects.
function toPlain(value, maxItems) {
  if (value === null || typeof value !== "object") return value;
  if (typeof value.toArray === "function") {
    if (value.length > maxItems) throw new Error(`a list claims ${value.length} elements`);
    return value.toArray().map((item) => toPlain(item, maxItems));
  }
  const plain = {};
  for (const [name, property] of Object.entries(Object.getOwnPropertyDescriptors(Object.getPrototypeOf(value)))) {
    if (property.get && !name.startsWith("_")) plain[name] = toPlain(value[name], maxItems);
  }
  return plain;
}
