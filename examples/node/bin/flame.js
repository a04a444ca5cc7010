#!/usr/bin/env node
// A small command line over lib/client.js, shaped like the C++ `flame` CLI:
//
//   node bin/flame.js [--broker EP] call POOL FN [PAYLOAD|-] [--timeout MS]   prints the result
//   node bin/flame.js [--broker EP] cast POOL FN [PAYLOAD|-]                  prints the job id
//   node bin/flame.js [--broker EP] place POOL FN [PAYLOAD|-]                 prints CHILD@RUNNER
//   node bin/flame.js [--broker EP] stop CHILD[@RUNNER]
//   node bin/flame.js [--broker EP] status                                    prints JSON
//   node bin/flame.js [--broker EP] events [--pool P] [--count N]             one JSON line per event
//
// PAYLOAD `-` reads standard input. The broker defaults to $FLAME_CLIENTS or tcp://127.0.0.1:5555.
// A broker with a [security] section: FLAME_SERVER_KEY (its public key, or a .pub file) and
// FLAME_KEY_FILE (our secret key file, from `flame keygen`), as the C++ CLI reads them.
// A failure prints `error: <code>: <message>` and exits 1. `events` prints the broker's events
// as they happen, as `flame events --json` does (`{"seq":..,"time":..,"kind":"runner_ready",...}`),
// until --count events, SIGINT or SIGTERM (exit 0), or the subscription ends otherwise (exit 1).
import { text } from "node:stream/consumers";
import { parseArgs } from "node:util";
import { Client } from "../lib/client.js";

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    broker: { type: "string", default: process.env.FLAME_CLIENTS ?? "tcp://127.0.0.1:5555" },
    timeout: { type: "string", default: "0" },
    pool: { type: "string", default: "" },
    count: { type: "string" },
  },
});
const [command, pool, fn, payloadArg = ""] = positionals;
const payload = payloadArg === "-" ? await text(process.stdin) : payloadArg;
const timeout = Number(flags.timeout);
const { FLAME_SERVER_KEY: serverKey, FLAME_KEY_FILE: secretKey } = process.env;
const client = new Client({ broker: flags.broker, curve: serverKey ? { serverKey, secretKey } : undefined });
const json = (value) => JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v), 2);

// Prints events until `count` of them, a signal, or the subscription's end (then throws why).
async function followEvents(pool, count) {
  let finish;
  const done = new Promise((resolve) => (finish = resolve));
  let printed = 0;
  const onEvent = (event) => {
    if (printed >= count) return;
    console.log(eventJson(event));
    if (++printed >= count) finish(null);
  };
  const stop = () => finish(null); // from before subscribing: a signal meanwhile ends it cleanly
  process.once("SIGINT", stop).once("SIGTERM", stop);
  try {
    const subscription = await client.subscribe(pool, onEvent, { onEnd: (error) => finish(error) });
    const error = await done;
    await subscription.cancel(); // at once if it has already ended
    if (error) throw error;
  } finally {
    process.off("SIGINT", stop).off("SIGTERM", stop);
  }
}

// One line of `flame events --json`: the same fields in the same order; 64-bit numbers as
// JSON numbers (BigInts written out digit for digit).
function eventJson(e) {
  const fields = {
    seq: e.seq, time: new Date(Number(e.timeMs)).toISOString(), timeMs: e.timeMs, kind: e.kindName,
    pool: e.pool, runner: e.runnerId, message: e.message, jobId: e.jobId, attempt: e.attempt,
    delayMs: e.delayMs, runners: e.runners, booting: e.booting,
  };
  return JSON.stringify(fields, (_, v) => (typeof v === "bigint" ? `\u0000${v}` : v)).replace(/"\\u0000(\d+)"/g, "$1");
}

try {
  switch (command) {
    case "call":
      process.stdout.write(await client.call(pool, fn, payload, { timeout }));
      break;
    case "cast":
      console.log(String(await client.cast(pool, fn, payload, { timeout })));
      break;
    case "place": {
      // Unlinked, as `flame place` does: the child outlives this process until `stop`.
      const child = await client.place(pool, fn, payload, { timeout, link: false });
      console.log(`${child.childId}@${child.runnerId}`);
      break;
    }
    case "stop":
      await client.stop(pool.split("@")[0]);
      break;
    case "status":
      console.log(json(await client.status()));
      break;
    case "events":
      await followEvents(flags.pool, flags.count === undefined ? Infinity : Number(flags.count));
      break;
    default:
      console.error(
        "usage: flame.js [--broker EP] call|cast|place POOL FN [PAYLOAD|-] | stop CHILD | status | events [--pool P] [--count N]",
      );
      process.exitCode = 2;
  }
} catch (e) {
  console.error(e.code ? `error: ${e.message}` : e);
  process.exitCode = 1;
} finally {
  await client.close();
}
