#!/usr/bin/env node
// A flame runner in Node.js serving four functions:
//   upper  the payload, upper-cased            echo   the payload as is
//   sleep  waits <payload> ms (cancellable)     fail   throws the payload as an error
//
//   node bin/runner.js --broker tcp://127.0.0.1:5556 --pool text [--slots 2] [--runner-id ID]
//
// The broker's backends start runners with FLAME_BROKER, FLAME_POOL, FLAME_RUNNER_ID,
// FLAME_BOOT_TOKEN and FLAME_MAX_CONCURRENCY in the environment; flags win over them. A broker
// with a [security] section adds FLAME_SERVER_KEY and FLAME_SECRET_KEY (CURVE); a static runner
// is given FLAME_SERVER_KEY and FLAME_KEY_FILE (its secret key file) by its operator. SIGTERM or
// SIGINT drains: running jobs finish, then the process exits 0.
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Runner } from "../lib/runner.js";

const env = process.env;
const { values: flags } = parseArgs({
  options: {
    broker: { type: "string", default: env.FLAME_BROKER ?? "tcp://127.0.0.1:5556" },
    pool: { type: "string", default: env.FLAME_POOL ?? "node" },
    slots: { type: "string", default: env.FLAME_MAX_CONCURRENCY ?? "1" },
    "runner-id": { type: "string", default: env.FLAME_RUNNER_ID },
    "failsafe-after": { type: "string", default: "30000" },
    verbose: { type: "boolean", default: false }, // log every job
  },
});

const runner = new Runner({
  broker: flags.broker,
  pool: flags.pool,
  slots: Number(flags.slots),
  runnerId: flags["runner-id"] || undefined,
  token: env.FLAME_BOOT_TOKEN || undefined,
  curve: env.FLAME_SERVER_KEY ? { serverKey: env.FLAME_SERVER_KEY, secretKey: env.FLAME_SECRET_KEY || env.FLAME_KEY_FILE } : undefined,
  failsafeAfterMs: Number(flags["failsafe-after"]),
  log: { ...console, debug: flags.verbose ? console.log : () => {} },
});

runner
  .handle("upper", (payload) => payload.toString().toUpperCase())
  .handle("echo", (payload) => payload)
  .handle("sleep", async (payload, { signal }) => {
    const ms = Number(payload.toString());
    if (!Number.isInteger(ms) || ms < 0) throw new Error(`sleep: payload must be decimal milliseconds, got '${payload}'`);
    await sleep(ms, undefined, { signal }); // rejects when the job is cancelled
    return `slept ${ms}`;
  })
  .handle("fail", (payload) => {
    throw new Error(payload.toString());
  });

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => runner.drain());
const why = await runner.run();
process.exitCode = why === "drained" || why === "stopped" ? 0 : 1;
