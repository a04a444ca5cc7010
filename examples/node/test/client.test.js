// The Node.js client against the real flame-broker and a C++ runner (flame-worker and its
// builtins: echo, sleep, fail; flaky with --enable-test-functions), on loopback ports the OS
// chooses; subscriptions' ends against a fake broker.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Router } from "zeromq";
import { Client, FlameError } from "../lib/client.js";
import { decode, encode, EventKind } from "../lib/wire.js";
import { binary, bounded, eventually, exampleDir, Proc, startBroker, waitRunnerReady } from "./harness.js";

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

  test("an unlinked child reports its exit too: stopped, it exits cancelled", async () => {
    const child = await client.place("cpp", "sleep", "600000", { link: false });
    assert.ok(child.exited instanceof Promise);
    await bounded(client.stop(String(child.childId)), 5_000, "stop was not answered");
    assert.equal((await bounded(child.exited, 5_000, "no childExited for an unlinked child")).code, "cancelled");
  });

  test("an unlinked child's exited resolves when it ends", async () => {
    const child = await client.place("cpp", "sleep", "200", { link: false });
    const exit = await bounded(child.exited, 5_000, "no childExited for an unlinked child that returned");
    assert.deepEqual(exit, { code: "none", message: "" });
  });

  test("close() stops watching an unlinked child, which keeps running; a linked one is cancelled", async () => {
    const placer = new Client({ broker: broker.clients, heartbeatIntervalMs: 200, log: quiet });
    const unlinked = await placer.place("cpp", "sleep", "600000", { link: false });
    const linked = await placer.place("cpp", "sleep", "600000");
    assert.ok(await eventually(async () => (await client.status())[0].slotsUsed === 2));
    await placer.close();
    assert.deepEqual(await bounded(unlinked.exited, 1_000, "close() left exited pending"), {
      code: "shutting_down",
      message: "the client stopped watching; the child keeps running",
    });
    assert.equal((await bounded(linked.exited, 1_000, "close() left exited pending")).code, "cancelled");
    // The broker stops the linked child only; the unlinked one still holds its slot.
    assert.ok(await eventually(async () => (await client.status())[0].slotsUsed === 1));
    await bounded(client.stop(unlinked.childId), 5_000, "stop was not answered");
    assert.ok(await eventually(async () => (await client.status())[0].slotsUsed === 0));
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

// Events (PROTOCOL.md, Events) and retries, against a broker of their own: pool "ev" is served
// by a flame-worker with the test functions (flaky), and more workers come and go.
describe("node client events and retries", () => {
  let broker, worker, client;
  const extra = [];
  const startWorker = (runnerId, ...flags) => {
    const proc = new Proc([binary("flame-worker"), "--broker", broker.runners, "--pool", "ev", "--runner-id", runnerId, ...flags]);
    extra.push(proc);
    return proc;
  };

  before(async () => {
    broker = await startBroker();
    worker = new Proc([
      binary("flame-worker"), "--broker", broker.runners, "--pool", "ev", "--runner-id", "ev-first",
      "--concurrency", "2", "--enable-test-functions",
    ]);
    await waitRunnerReady(broker, "ev");
    client = new Client({ broker: broker.clients, heartbeatIntervalMs: 200, log: quiet });
  });

  after(async () => {
    await client?.close();
    for (const proc of extra) await proc.stop();
    await worker?.stop();
    await broker?.proc.stop();
  });

  // Resolves with the first event of `events` (a growing array) that `match` accepts.
  const arrival = (events, match, boundMs = 10_000) =>
    bounded(
      (async () => {
        for (;;) {
          const found = events.find(match);
          if (found) return found;
          await new Promise((resolve) => (events.wake = resolve));
        }
      })(),
      boundMs,
      `no such event within ${boundMs} ms; got ${events.map((e) => e.kindName)}`,
    );
  const collector = () => {
    const events = [];
    const onEvent = (e) => {
      events.push(e);
      events.wake?.();
    };
    return { events, onEvent };
  };

  test("a subscriber sees a runner become ready; cancel ends it once, with no more events", async () => {
    const mine = collector();
    const ends = [];
    const sub = await client.subscribe("ev", mine.onEvent, { onEnd: (e) => ends.push(e) });
    assert.equal(typeof sub.id, "bigint");
    assert.ok(sub.lastSeq >= 1n, `lastSeq ${sub.lastSeq}: ev-first's runner_ready came before`);
    // A witness on every pool, subscribed after `mine`: the broker sends each event to `mine`
    // first, on the same connection, so what the witness sees `mine` would have seen before.
    const witness = collector();
    const witnessSub = await client.subscribe("", witness.onEvent);

    const second = startWorker("ev-second");
    const ready = await arrival(mine.events, (e) => e.kindName === "runner_ready" && e.runnerId === "ev-second");
    assert.equal(ready.pool, "ev");
    assert.equal(ready.requestId, sub.id);
    assert.ok(ready.seq > 0n && ready.seq > sub.lastSeq, `seq ${ready.seq}`);
    assert.equal(ready.runners, 2);
    assert.equal(typeof ready.timeMs, "bigint");
    assert.ok(Math.abs(Number(ready.timeMs) - Date.now()) < 60_000, "timeMs is the wall clock");
    assert.match(ready.message, /slot/);

    await bounded(sub.cancel(), 5_000, "the broker did not confirm the cancel");
    assert.equal(ends.length, 1);
    assert.ok(ends[0] instanceof FlameError);
    assert.equal(ends[0].code, "cancelled");
    const seen = mine.events.length;

    await second.stop();
    await arrival(witness.events, (e) => e.kindName === "runner_stopped" && e.runnerId === "ev-second");
    assert.equal(mine.events.length, seen, "events after cancel");
    await sub.cancel(); // again: already ended, nothing happens
    assert.equal(ends.length, 1, "onEnd is called once");
    await bounded(witnessSub.cancel(), 5_000, "the broker did not confirm the cancel");
  });

  test("subscribing to an unknown pool is refused", async () => {
    await rejectsWith(client.subscribe("nosuchpool", () => {}), "unknown_pool");
  });

  test("a flaky call succeeds after retries, each one an event and counted in status", async () => {
    const mine = collector();
    const sub = await client.subscribe("ev", mine.onEvent);
    const [before] = (await client.status()).filter((p) => p.name === "ev");
    const result = await client.call("ev", "flaky", "2:ok", {
      timeout: 10_000, retries: 3, retryHandlerError: true, retryBackoffMs: 20,
    });
    assert.equal(result.toString(), "ok");
    // Both were sent before the result, on the same connection.
    const retried = mine.events.filter((e) => e.kindName === "job_retried");
    assert.deepEqual(retried.map((e) => e.attempt), [1, 2]);
    for (const e of retried) {
      assert.equal(e.pool, "ev");
      assert.ok(e.jobId > 0n);
      assert.equal(e.jobId, retried[0].jobId, "the same job, retried");
      assert.ok(e.delayMs >= 20, `delayMs ${e.delayMs}`);
      assert.match(e.message, /handler_error: flaky: failure/);
    }
    const [pool] = (await client.status()).filter((p) => p.name === "ev");
    assert.ok(pool.retried >= before.retried + 2n, `retried ${pool.retried}`);
    assert.ok(pool.retried >= 2n);
    await bounded(sub.cancel(), 5_000, "the broker did not confirm the cancel");

    // Without retries the first failure is the answer.
    await rejectsWith(client.call("ev", "flaky", "1:never"), "handler_error", "failure 1 of 1");
    // Retries run out: the last failure is the answer.
    await rejectsWith(
      client.call("ev", "flaky", "5:late", { retries: 1, retryHandlerError: true, retryBackoffMs: 10 }),
      "handler_error",
      "failure 2 of 5",
    );
  });

  test("bin/flame.js events prints one JSON object per event", async () => {
    // Its subscription is in force once the broker logs it (one more such line than before the
    // CLI started); then an event is made.
    const subscribedLines = () => broker.proc.output.split("subscribed to the events of pool ev").length - 1;
    const before = subscribedLines();
    const cli = new Proc([process.execPath, `${exampleDir}/bin/flame.js`, "--broker", broker.clients, "events", "--pool", "ev", "--count", "1"]);
    extra.push(cli);
    assert.ok(await eventually(async () => subscribedLines() > before || !cli.running, 10_000), "the CLI did not subscribe");
    await client.call("ev", "flaky", "1:cli", { retries: 1, retryHandlerError: true });
    const { code } = await cli.waitExit(10_000);
    assert.equal(code, 0, cli.output);
    const lines = cli.stdout.trim().split("\n");
    assert.equal(lines.length, 1, cli.stdout);
    const event = JSON.parse(lines[0]);
    assert.equal(event.kind, "job_retried");
    assert.equal(event.pool, "ev");
    assert.equal(event.attempt, 1);
    assert.equal(typeof event.seq, "number");
    assert.equal(typeof event.jobId, "number");
    assert.match(event.time, /^\d{4}-\d\d-\d\dT/);
  });
});

describe("node client subscriptions end with the broker", () => {
  // A fake broker on a ROUTER: answers `subscribe` with `subscribed` and one event, and
  // heartbeats as `answerHeartbeat` says (undefined: never).
  async function fakeBroker(answerHeartbeat) {
    const router = new Router({ linger: 0 });
    await router.bind("tcp://127.0.0.1:*");
    let beats = 0;
    (async () => {
      for await (const [peer, , header] of router) {
        const m = decode(header);
        if (m.kind === "subscribe") {
          await router.send([peer, "", encode("subscribed", { requestId: m.requestId, lastSeq: 4n })]);
          const event = { requestId: m.requestId, seq: 5n, timeMs: 1n, eventKind: EventKind.RUNNER_LOST, pool: "p", runnerId: "r" };
          await router.send([peer, "", encode("event", event)]);
        } else if (m.kind === "heartbeat") {
          const instance = answerHeartbeat?.(++beats);
          if (instance !== undefined) await router.send([peer, "", encode("heartbeat", { intervalMs: 100, instance })]);
        }
      }
    })().catch(() => {});
    return router;
  }

  for (const [name, answer, text] of [
    ["a silent broker", undefined, "no message from the broker"],
    ["a restarted broker (another instance)", (n) => (n < 3 ? 7n : 8n), "restarted"],
  ]) {
    test(`${name} ends a subscription with broker_unreachable`, async () => {
      const router = await fakeBroker(answer);
      const client = new Client({ broker: router.lastEndpoint, heartbeatIntervalMs: 100, liveness: 3, log: quiet });
      try {
        const events = [];
        let ended;
        const gone = new Promise((resolve) => (ended = resolve));
        const sub = await bounded(
          client.subscribe("p", (e) => events.push(e), { onEnd: ended }),
          2_000,
          "no subscribed",
        );
        assert.equal(sub.lastSeq, 4n);
        const error = await bounded(gone, 3_000, "the subscription did not end");
        assert.equal(error.code, "broker_unreachable");
        assert.match(error.message, new RegExp(text));
        assert.equal(events.length, 1);
        assert.equal(events[0].kindName, "runner_lost");
        assert.equal(events[0].kind, EventKind.RUNNER_LOST);
        assert.equal(events[0].seq, 5n);
      } finally {
        await client.close();
        router.close();
      }
    });
  }
});
