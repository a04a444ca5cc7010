// lib/wire.js alone: Envelopes round-trip, and bad headers are refused with a reason, quickly
// (no processes, no sockets).
import assert from "node:assert/strict";
import { test } from "node:test";
import { codeName, decode, encode, ErrorCode, EventKind, eventKindName, Mode, PROTOCOL_VERSION } from "../lib/wire.js";

test("an encoded submit decodes to the same fields", () => {
  const fields = { requestId: 7n, mode: Mode.PLACE, pool: "thumbs", function: "resize", timeoutMs: 0xffffffff, link: true };
  const header = encode("submit", fields);
  assert.equal(header.length % 8, 0);
  assert.deepEqual(decode(header), {
    kind: "submit", version: PROTOCOL_VERSION, idempotent: false, retries: 0, waitTimeoutMs: 0, splitBudget: false,
    retryHandlerError: false, retryTimeout: false, retryBackoffMs: 0, retryBackoffMaxMs: 0, ...fields,
  });
});

test("subscribe, subscribed and event round-trip; an event's own kind is eventKind", () => {
  assert.deepEqual(decode(encode("subscribe", { requestId: 3n, pool: "gpu" })), {
    kind: "subscribe", version: PROTOCOL_VERSION, requestId: 3n, pool: "gpu",
  });
  assert.deepEqual(decode(encode("subscribed", { requestId: 3n, lastSeq: 41n })), {
    kind: "subscribed", version: PROTOCOL_VERSION, requestId: 3n, lastSeq: 41n,
  });
  const event = {
    requestId: 3n, seq: 42n, timeMs: 1_700_000_000_123n, eventKind: EventKind.JOB_RETRIED, pool: "gpu",
    runnerId: "gpu-1", message: "handler_error: disk full", jobId: 0xfedcba9876543210n, attempt: 2, delayMs: 250,
    runners: 3, booting: 1,
  };
  assert.deepEqual(decode(encode("event", event)), { kind: "event", version: PROTOCOL_VERSION, ...event });
  // The schema's own name for the field works too.
  assert.equal(decode(encode("event", { requestId: 1n, kind: EventKind.RUNNER_READY })).eventKind, EventKind.RUNNER_READY);
});

test("event kinds read as flame events prints them, in the schema's order", () => {
  const names = [
    "runner_booting", "runner_ready", "runner_draining", "runner_stopped", "runner_lost", "boot_failed",
    "pool_changed", "queue_full", "job_retried",
  ];
  names.forEach((name, i) => assert.equal(eventKindName(i), name));
  assert.equal(eventKindName(EventKind.JOB_RETRIED), "job_retried");
  assert.equal(eventKindName(99), "unknown");
});

test("a status reply carries each pool's retried count", () => {
  const reply = decode(encode("statusReply", { requestId: 1n, pools: [{ name: "a", retried: 7n }] }));
  assert.equal(reply.pools[0].retried, 7n);
});

test("lists of text and of structs round-trip", () => {
  const ready = decode(
    encode("ready", { runnerId: "r-1", pool: "p", slots: 2, functions: ["upper", "sleep"], held: [{ jobId: 5n, instance: 9n }] }),
  );
  assert.deepEqual(ready.functions, ["upper", "sleep"]);
  assert.deepEqual(ready.held, [{ jobId: 5n, instance: 9n }]);
  assert.equal(ready.busy, 0);
});

test("error codes read as the C++ tools print them; unknown numbers are internal", () => {
  assert.equal(codeName(ErrorCode.UNKNOWN_POOL), "unknown_pool");
  assert.equal(codeName(ErrorCode.NONE), "none");
  assert.equal(codeName(999), "internal");
});

test("bad headers are refused with a reason", () => {
  const submit = encode("submit", { requestId: 1n, pool: "p", function: "f" });
  const cases = {
    empty: Buffer.alloc(0),
    "not a multiple of 8": submit.subarray(0, submit.length - 4),
    "over 64 KiB": Buffer.alloc(65 * 1024 + 8),
    // 8 bytes whose segment table claims ~1.6 billion segments: capnp-es alone would try to
    // allocate them before noticing the frame is too short.
    "a lying segment table": Buffer.from("garbage!"),
    "segments shorter than the table says": Buffer.concat([submit, Buffer.alloc(8)]),
    "truncated": Buffer.from([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    const t0 = performance.now();
    const result = decode(bytes);
    assert.ok(result.error, `${name}: decoded ${JSON.stringify(result, (_, v) => String(v))}`);
    assert.ok(performance.now() - t0 < 1_000, `${name}: took too long`);
  }
  const v2 = encode("heartbeat", {});
  v2.writeUInt16LE(2, 16); // Envelope.version, the first field of the root struct's data
  assert.match(decode(v2).error, /protocol version 2/);
});

test("random corruption never throws", () => {
  const header = encode("statusReply", { requestId: 1n, pools: [{ name: "a", runners: [{ runnerId: "r" }] }] });
  for (let i = 0; i < 500; i++) {
    const bytes = Buffer.from(header);
    bytes[8 + ((i * 7919) % (bytes.length - 8))] ^= 1 + (i % 255);
    decode(bytes); // a value either way; an exception would fail the test
  }
});
