// Generates gen/flame.js from schema/flame.capnp: the `capnp` tool (Debian's capnproto package)
// parses the schema into a CodeGeneratorRequest, and capnp-es's compiler turns that into an ES
// module (it uses TypeScript, a devDependency, to emit JavaScript). Offline.
// Skips the work when gen/flame.js is newer than the schema; --force regenerates anyway.
// Writes a temporary file and renames it, so a concurrent reader never sees half a file.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const schemaDir = resolve(root, "../../schema");
const schema = join(schemaDir, "flame.capnp");
const out = join(root, "gen", "flame.js");

const fresh = existsSync(out) && statSync(out).mtimeMs >= statSync(schema).mtimeMs;
if (fresh && !process.argv.includes("--force")) process.exit(0);

let compileAll;
try {
  ({ compileAll } = await import("capnp-es/compiler"));
} catch (e) {
  console.error(`gen-schema: ${e.message}\ngen-schema: run \`npm ci\` in examples/node first (scripts/install-deps.sh does)`);
  process.exit(1);
}
const request = execFileSync("capnp", ["compile", "-o-", `--src-prefix=${schemaDir}`, schema], {
  maxBuffer: 64 << 20,
});
const { files } = await compileAll(request, { js: true });
const js = [...files].find(([name]) => name.endsWith("flame.js"));
if (!js) throw new Error(`capnp-es produced no flame.js (got ${[...files.keys()].join(", ")})`);
mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
writeFileSync(tmp, js[1]);
renameSync(tmp, out);
console.log(`gen-schema: wrote ${out}`);
