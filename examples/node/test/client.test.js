// The Node.js client against the real flame-broker and a C++ runner (flame-worker and its
// builtins: echo, sleep, fail), on loopback ports the OS chooses.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Router } from "zeromq";
import { Client, FlameError } from "../lib/client.js";
import { binary, bounded, eventually, Proc, startBroker, waitRunnerReady } from "./harness.js";

const quiet = { ...console, warn() {}, info() {} };

// Asserts that `promise` rejects with a FlameError of `code` (and, optionally, text in its message).
async function rejectsWith(promise, code, text) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof FlameError, `not a FlameError: ${e}`);
    assert.equal(e.code, code, e.message);
    if (text) assert.match(e.message, new RegExp(text));
    return true;
  });
}

describe("node client -> broker -> C++ runner", () => {
  let broker, worker, client;

  before(async () => {
    broker = await startBroker();
    worker = new Proc([binary("flame-worker"), "--broker", broker.runners, "--pool", "cpp", "--concurrency", "3"]);
    await waitRunnerReady(broker, "cpp");
    client = new Client({ broker: broker.clients, heartbeatIntervalMs: 200, log: quiet });
  });

  after(async () => {
    await client?.close();
    await worker?.stop();
    await broker?.proc.stop();
  });

  test("call returns the function's result bytes", async () => {
    const result = await client.call("cpp", "echo", "hello flame", { timeout: 5_000 });
    assert.ok(Buffer.isBuffer(result));
    assert.equal(result.toString(), "hello flame");
    assert.equal((await client.call("cpp", "echo")).length, 0); // no payload: empty
  });

  test("answers are matched to their requests by request id", async () => {
    // Interleaved: the sleeps finish after the echoes that were sent after them.
    const calls = [];
    for (let i = 0; i < 12; i++) {
      calls.push(i % 4 === 0 ? client.call("cpp", "sleep", String(100 - i * 5)) : client.call("cpp", "echo", `n${i}`));
    }
    const results = (await Promise.all(calls)).map(String);
    results.forEach((r, i) => assert.equal(r, i % 4 === 0 ? `slept ${100 - i * 5}` : `n${i}`));
  });

  test("errors carry the broker's code", async () => {
    await rejectsWith(client.call("cpp", "fail", "it broke"), "handler_error", "it broke");
    await rejectsWith(client.call("nosuchpool", "echo", "x"), "unknown_pool");
    await rejectsWith(client.call("cpp", "nosuchfn", "x"), "unknown_function");
    await rejectsWith(client.cast("nosuchpool", "echo", "x"), "unknown_pool");
  });

  test("a call past its timeout fails with timeout, and the runner is freed", async () => {
    const t0 = performance.now();
    await rejectsWith(client.call("cpp", "sleep", "10000", { timeout: 300 }), "timeout");
    assert.ok(performance.now() - t0 < 3_000, "the broker's timeout, not a local one");
    // The C++ runner honoured cancelJob: every slot comes back.
    assert.ok(await eventually(async () => (await client.status())[0].slotsUsed === 0, 5_000));
  });

  test("an AbortSignal cancels a call", async () => {
    const controller = new AbortController();
    const call = client.call("cpp", "sleep", "10000", { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    await rejectsWith(call, "cancelled");
    assert.ok(await eventually(async () => (await client.status())[0].slotsUsed === 0, 5_000));
    // Aborted before it is sent: nothing is submitted.
    const [before] = await client.status();
    await rejectsWith(client.call("cpp", "echo", "x", { signal: AbortSignal.abort() }), "cancelled");
    assert.equal((await client.status())[0].completed, before.completed);
  });

  test("heartbeats keep a linked call alive past the broker's liveness window", async () => {
    // The broker drops a linked client silent for 200 ms x 3; this call takes longer than that.
    // A client left at the default 1000 ms must adopt the broker's 200 ms from its first answer.
    const fresh = new Client({ broker: broker.clients, log: quiet });
    try {
      const result = await fresh.call("cpp", "sleep", "1500", { timeout: 10_000, link: true });
      assert.equal(result.toString(), "slept 1500");
    } finally {
      await fresh.close();
    }
  });

  test("cast is accepted with a job id", async () => {
    const [before] = await client.status();
    const jobId = await client.cast("cpp", "echo", "fire and forget");
    assert.equal(typeof jobId, "bigint");
    assert.ok(jobId > 0n);
    assert.ok(await eventually(async () => (await client.status())[0].completed > before.completed));
  });

  test("place starts a child that holds a slot until stop", async () => {
    const child = await client.place("cpp", "sleep", "600000");
    assert.equal(typeof child.childId, "bigint");
    assert.match(child.runnerId, /^cpp-/);
    assert.ok(await eventually(async () => (await client.status())[0].slotsUsed === 1));

    await bounded(client.stop(child.childId), 5_000, "stop was not answered");
    const exit = await bounded(child.exited, 5_000, "no childExited for a linked child");
    assert.equal(exit.code, "cancelled");
    assert.ok(await eventually(async () => (await client.status())[0].slotsUsed === 0));

    await rejectsWith(client.stop(child.childId), "not_found");
  });

  test("an unlinked child outlives nothing but stop, and reports no exit", async () => {
    const child = await client.place("cpp", "sleep", "600000", { link: false });
    assert.equal(child.exited, undefined);
    await bounded(client.stop(String(child.childId)), 5_000, "stop was not answered");
  });
});

describe("node client liveness", () => {
  test("a silent broker fails outstanding work with broker_unreachable", async () => {
    // A ROUTER that reads and never answers: the client must give up after 100 ms x 3.
    const silent = new Router({ linger: 0 });
    await silent.bind("tcp://127.0.0.1:*");
    const client = new Client({ broker: silent.lastEndpoint, heartbeatIntervalMs: 100, liveness: 3, log: quiet });
    try {
      const t0 = performance.now();
      await rejectsWith(client.call("p", "f", "x"), "broker_unreachable");
      const took = performance.now() - t0;
      assert.ok(took >= 250 && took < 2_000, `gave up after ${took} ms`);
    } finally {
      await client.close();
      silent.close();
    }
  });

  test("a payload over the broker's limit is refused without being sent", async () => {
    const broker = await startBroker(["--max-payload", "4096"]);
    const client = new Client({ broker: broker.clients, log: quiet });
    try {
      // Over 1 MiB: the client first asks the broker for its limit (a heartbeat), then refuses.
      await rejectsWith(client.call("cpp", "echo", Buffer.alloc(2 << 20)), "payload_too_large");
      await rejectsWith(client.call("cpp", "echo", Buffer.alloc(5000)), "payload_too_large");
    } finally {
      await client.close();
      await broker.proc.stop();
    }
  });
});
