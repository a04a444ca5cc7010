#!/usr/bin/env node
// A small command line over lib/client.js, shaped like the C++ `flame` CLI:
//
//   node bin/flame.js [--broker EP] call POOL FN [PAYLOAD|-] [--timeout MS]   prints the result
//   node bin/flame.js [--broker EP] cast POOL FN [PAYLOAD|-]                  prints the job id
//   node bin/flame.js [--broker EP] place POOL FN [PAYLOAD|-]                 prints CHILD@RUNNER
//   node bin/flame.js [--broker EP] stop CHILD[@RUNNER]
//   node bin/flame.js [--broker EP] status                                    prints JSON
//
// PAYLOAD `-` reads standard input. The broker defaults to $FLAME_CLIENTS or tcp://127.0.0.1:5555.
// A broker with a [security] section: FLAME_SERVER_KEY (its public key, or a .pub file) and
// FLAME_KEY_FILE (our secret key file, from `flame keygen`), as the C++ CLI reads them.
// A failure prints `error: <code>: <message>` and exits 1.
import { text } from "node:stream/consumers";
import { parseArgs } from "node:util";
import { Client } from "../lib/client.js";

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    broker: { type: "string", default: process.env.FLAME_CLIENTS ?? "tcp://127.0.0.1:5555" },
    timeout: { type: "string", default: "0" },
  },
});
const [command, pool, fn, payloadArg = ""] = positionals;
const payload = payloadArg === "-" ? await text(process.stdin) : payloadArg;
const timeout = Number(flags.timeout);
const { FLAME_SERVER_KEY: serverKey, FLAME_KEY_FILE: secretKey } = process.env;
const client = new Client({ broker: flags.broker, curve: serverKey ? { serverKey, secretKey } : undefined });
const json = (value) => JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v), 2);

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
    default:
      console.error("usage: flame.js [--broker EP] call|cast|place POOL FN [PAYLOAD|-] | stop CHILD | status");
      process.exitCode = 2;
  }
} catch (e) {
  console.error(e.code ? `error: ${e.message}` : e);
  process.exitCode = 1;
} finally {
  await client.close();
}
