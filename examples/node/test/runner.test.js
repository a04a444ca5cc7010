// The Node.js runner (bin/runner.js) behind the real flame-broker, called by the C++ `flame` CLI
// and by the Node.js client, on loopback ports the OS chooses.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Client } from "../lib/client.js";
import { eventually, exampleDir, FAST_BROKER, Proc, runCli, startBroker, waitRunnerReady } from "./harness.js";

const quiet = { ...console, warn() {}, info() {} };
const startRunner = (broker, pool, ...flags) =>
  new Proc([process.execPath, `${exampleDir}/bin/runner.js`, "--broker", broker.runners, "--pool", pool, ...flags]);

describe("C++ CLI -> broker -> node runner", () => {
  let broker, runner, client;
  const slotsUsed = async () => (await client.status()).find((p) => p.name === "node")?.slotsUsed;

  before(async () => {
    broker = await startBroker();
    runner = startRunner(broker, "node", "--slots", "2");
    await runner.waitForLine("registered in pool node");
    await waitRunnerReady(broker, "node");
    client = new Client({ broker: broker.clients, heartbeatIntervalMs: 200, log: quiet });
  });

  after(async () => {
    await client?.close();
    await runner?.stop();
    await broker?.proc.stop();
  });

  test("flame call runs a function served by the node runner", async () => {
    const r = await runCli(["call", "--broker", broker.clients, "node", "upper", "hello from c++"]);
    assert.equal(r.stderr, "");
    assert.equal(r.code, 0);
    assert.equal(r.stdout, "HELLO FROM C++");
  });

  test("a handler's error reaches the CLI as handler_error", async () => {
    const r = await runCli(["call", "--broker", broker.clients, "node", "fail", "boom"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: handler_error: boom/);
  });

  test("on timeout the node runner gets cancelJob, stops the handler and frees its slot", async () => {
    const r = await runCli(["call", "--broker", broker.clients, "--timeout", "300ms", "node", "sleep", "60000"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: timeout/);
    assert.ok(await eventually(async () => (await slotsUsed()) === 0), "the slot was not returned");
    assert.equal((await client.call("node", "upper", "still serving")).toString(), "STILL SERVING");
  });

  test("flame place and flame stop a child on the node runner", async () => {
    const placed = await runCli(["place", "--broker", broker.clients, "node", "sleep", "600000"]);
    assert.equal(placed.code, 0, placed.stderr);
    const handle = placed.stdout.trim();
    assert.match(handle, /^\d+@node-node-/);
    assert.equal(await slotsUsed(), 1);
    const stopped = await runCli(["stop", "--broker", broker.clients, handle]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.ok(await eventually(async () => (await slotsUsed()) === 0));
  });

  test("the node client calls the node runner, two jobs at once on its two slots", async () => {
    const calls = [client.call("node", "sleep", "700"), client.call("node", "sleep", "700")];
    assert.ok(await eventually(async () => (await slotsUsed()) === 2), "both jobs run at once");
    assert.deepEqual((await Promise.all(calls)).map(String), ["slept 700", "slept 700"]);
  });

  test("an idle runner heartbeats at the broker's interval and stays registered", async () => {
    // Time passing is what is tested here: several of the broker's 600 ms liveness windows.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.doesNotMatch(broker.proc.output, /runner=node-node-\S+ removed/);
    assert.equal(runner.output.match(/registered in pool/g).length, 1, runner.output);
    assert.equal((await client.call("node", "upper", "alive")).toString(), "ALIVE");
  });

  test("an unknown function is refused by the broker from the runner's list", async () => {
    const r = await runCli(["call", "--broker", broker.clients, "node", "nosuchfn"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: unknown_function/);
  });
});

describe("node runner lifecycle", () => {
  test("SIGTERM drains: the running job finishes, then the runner leaves and exits 0", async () => {
    const broker = await startBroker();
    const runner = startRunner(broker, "drainme", "--verbose");
    const client = new Client({ broker: broker.clients, heartbeatIntervalMs: 200, log: quiet });
    try {
      await runner.waitForLine("registered in pool drainme");
      const call = client.call("drainme", "sleep", "500", { timeout: 10_000 });
      await runner.waitForLine("sleep started"); // running on the runner, not on its way there
      process.kill(runner.pid, "SIGTERM");
      assert.equal((await call).toString(), "slept 500");
      assert.deepEqual(await runner.waitExit(5_000), { code: 0, signal: null });
      assert.ok(await eventually(async () => (await client.status())[0]?.runners.length === 0));
    } finally {
      await client.close();
      await runner.stop();
      await broker.proc.stop();
    }
  });

  test("a broker shutting down drains the runner, which exits 0", async () => {
    const broker = await startBroker();
    const runner = startRunner(broker, "bye");
    try {
      await runner.waitForLine("registered in pool bye");
      process.kill(broker.proc.pid, "SIGTERM");
      assert.deepEqual(await runner.waitExit(10_000), { code: 0, signal: null });
      assert.match(runner.output, /draining \(the broker asked\)/);
    } finally {
      await runner.stop();
      await broker.proc.stop();
    }
  });

  test("a runner with no broker gives up after its failsafe time", async () => {
    const broker = await startBroker();
    const runner = startRunner(broker, "orphan", "--failsafe-after", "1500");
    try {
      await runner.waitForLine("registered in pool orphan");
      process.kill(broker.proc.pid, "SIGKILL");
      const { code } = await runner.waitExit(10_000);
      assert.equal(code, 1);
      assert.match(runner.output, /no broker for 1500 ms; exiting/);
    } finally {
      await runner.stop();
      await broker.proc.stop();
    }
  });

  test("a runner reconnects to a restarted broker and serves again", async () => {
    const first = await startBroker();
    const runner = startRunner(first, "again");
    let second;
    try {
      await runner.waitForLine("registered in pool again");
      process.kill(first.proc.pid, "SIGKILL");
      await first.proc.waitExit();
      // The new broker binds the ports the OS gave the first one.
      second = await startBroker(FAST_BROKER, { clients: first.clients, runners: first.runners });
      await waitRunnerReady(second, "again");
      const r = await runCli(["call", "--broker", second.clients, "again", "upper", "back"]);
      assert.equal(r.stdout, "BACK", r.stderr);
    } finally {
      await runner.stop();
      await first.proc.stop();
      await second?.proc.stop();
    }
  });

  test("an elastic pool boots node runners on demand, with their boot token, and lets them go", async () => {
    // The broker's process backend starts bin/runner.js with FLAME_BROKER, FLAME_POOL,
    // FLAME_RUNNER_ID and FLAME_BOOT_TOKEN; the runner must present that id and token.
    const dir = mkdtempSync(join(tmpdir(), "flame-node-"));
    const config = join(dir, "flame.toml");
    writeFileSync(
      config,
      `[pools.elastic]
backend = "process"
min = 0
max = 1
max_concurrency = 2
idle_shutdown_after = "300ms"
boot_timeout = "20s"
[pools.elastic.process]
command = [${JSON.stringify(process.execPath)}, ${JSON.stringify(`${exampleDir}/bin/runner.js`)}]
stop_grace = "2s"
`,
    );
    const broker = await startBroker([...FAST_BROKER, "--config", config]);
    try {
      const r = await runCli(["call", "--broker", broker.clients, "--timeout", "20s", "elastic", "upper", "booted"]);
      assert.equal(r.stdout, "BOOTED", r.stderr);
      // Idle past idle_shutdown_after: the broker drains the runner, which leaves.
      await broker.proc.waitForLine((l) => l.includes("pool=elastic runner=") && l.includes("removed"), 10_000);
    } finally {
      await broker.proc.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
