// CURVE: a broker with a [security] section (its key, allowed client and runner keys), the Node
// client and runner speaking CURVE with it, the C++ CLI calling the Node runner over CURVE, the
// broker booting Node runners with keys it minted, and refused keys reported at once.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { curveKeyPair } from "zeromq";
import { Client, FlameError } from "../lib/client.js";
import { exampleDir, FAST_BROKER, Proc, runCli, startBroker, waitRunnerReady } from "./harness.js";

const quiet = { ...console, warn() {}, info() {} };

describe("CURVE", () => {
  const dir = mkdtempSync(join(tmpdir(), "flame-node-curve-"));
  const keys = Object.fromEntries(["broker", "client", "runner", "stranger"].map((name) => [name, curveKeyPair()]));
  // flame keygen's files: NAME.key (the secret, mode 0600) and NAME.pub.
  const keyFile = (name) => {
    const path = join(dir, `${name}.key`);
    writeFileSync(path, `${keys[name].secretKey}\n`);
    chmodSync(path, 0o600);
    return path;
  };
  let broker, runner;

  before(async () => {
    writeFileSync(join(dir, "clients.txt"), `${keys.client.publicKey} node-test-client\n`);
    writeFileSync(join(dir, "runners.txt"), `${keys.runner.publicKey} node-test-runner\n`);
    writeFileSync(
      join(dir, "flame.toml"),
      `[pools.booted]
backend = "process"
max = 1
idle_shutdown_after = "10s"
[pools.booted.process]
command = [${JSON.stringify(process.execPath)}, ${JSON.stringify(`${exampleDir}/bin/runner.js`)}]
stop_grace = "2s"
`,
    );
    broker = await startBroker([
      ...FAST_BROKER,
      ...["--config", join(dir, "flame.toml"), "--secret-key-file", keyFile("broker")],
      ...["--client-keys", join(dir, "clients.txt"), "--runner-keys", join(dir, "runners.txt")],
    ]);
    // A static Node runner, given the broker's public key and its own key file.
    runner = new Proc([process.execPath, `${exampleDir}/bin/runner.js`, "--broker", broker.runners, "--pool", "secure"], {
      env: { FLAME_SERVER_KEY: keys.broker.publicKey, FLAME_KEY_FILE: keyFile("runner") },
    });
    await waitRunnerReady(broker, "secure");
  });

  after(async () => {
    await runner?.stop();
    await broker?.proc.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("the C++ CLI calls the Node runner, both over CURVE", async () => {
    const cli = ["--server-key", keys.broker.publicKey, "--key-file", keyFile("client")];
    const r = await runCli(["call", "--broker", broker.clients, ...cli, "secure", "upper", "encrypted"]);
    assert.equal(r.stdout, "ENCRYPTED", r.stderr);
  });

  test("the Node client calls over CURVE with its key on the list", async () => {
    const client = new Client({
      broker: broker.clients,
      curve: { serverKey: keys.broker.publicKey, secretKey: keys.client.secretKey },
      log: quiet,
    });
    try {
      assert.equal((await client.call("secure", "upper", "hi")).toString(), "HI");
    } finally {
      await client.close();
    }
  });

  test("the broker boots a Node runner with a key it minted for it", async () => {
    const client = new Client({ broker: broker.clients, curve: { serverKey: keys.broker.publicKey, secretKey: keyFile("client") }, log: quiet });
    try {
      assert.equal((await client.call("booted", "upper", "minted", { timeout: 20_000 })).toString(), "MINTED");
    } finally {
      await client.close();
    }
  });

  test("a client whose key is not listed, or that speaks plaintext, gets unauthorized at once", async () => {
    for (const curve of [{ serverKey: keys.broker.publicKey, secretKey: keys.stranger.secretKey }, undefined]) {
      const client = new Client({ broker: broker.clients, curve, heartbeatIntervalMs: 5_000, log: quiet });
      try {
        const t0 = performance.now();
        await assert.rejects(client.call("secure", "upper", "x"), (e) => e instanceof FlameError && e.code === "unauthorized");
        assert.ok(performance.now() - t0 < 2_000, "the handshake said so, not a timeout");
        // A later request tries a fresh connection, and is refused again.
        await assert.rejects(client.status(), (e) => e.code === "unauthorized");
      } finally {
        await client.close();
      }
    }
  });

  test("a runner whose key is not listed exits at once", async () => {
    const stranger = new Proc([process.execPath, `${exampleDir}/bin/runner.js`, "--broker", broker.runners, "--pool", "secure"], {
      env: { FLAME_SERVER_KEY: keys.broker.publicKey, FLAME_KEY_FILE: keyFile("stranger") },
    });
    try {
      assert.deepEqual(await stranger.waitExit(5_000), { code: 1, signal: null });
      assert.match(stranger.output, /refused our CURVE key/);
    } finally {
      await stranger.stop();
    }
  });
});
