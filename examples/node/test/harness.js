// Real processes for the tests: the flame binaries (from $FLAME_BIN_DIR, which ctest sets, else
// ../../build/bin) and our own scripts, on loopback ports the OS chooses. Every wait has a bound;
// every process is stopped by the pid we started, and killed if it does not stop.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const exampleDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const binDir = process.env.FLAME_BIN_DIR ?? resolve(exampleDir, "../../build/bin");
export function binary(name) {
  const path = resolve(binDir, name);
  if (!existsSync(path)) throw new Error(`${path} not found: build it, or point FLAME_BIN_DIR at the binaries`);
  return path;
}

// Fast heartbeats, so that liveness windows are short: 200 ms x 3.
export const FAST_BROKER = ["--heartbeat-interval", "200ms", "--liveness", "3"];

export class Proc {
  constructor(argv, { env = {}, input } = {}) {
    this.argv = argv;
    this.output = "";
    this.stdout = "";
    this.stderr = "";
    this.child = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout.on("data", (d) => ((this.stdout += d), (this.output += d), this.#changed()));
    this.child.stderr.on("data", (d) => ((this.stderr += d), (this.output += d), this.#changed()));
    this.child.stdin.end(input);
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => resolve({ code, signal }));
      this.child.on("error", (error) => {
        // It could not be started (a missing binary, say): it counts as exited, and says why.
        this.spawnError = error;
        this.output += `${error.message}\n`;
        resolve({ code: null, signal: null });
      });
    });
    this.exited.then(() => this.#changed());
    this.waiters = new Set();
  }

  get pid() {
    return this.child.pid;
  }

  get running() {
    return !this.spawnError && this.child.exitCode === null && this.child.signalCode === null;
  }

  #changed() {
    for (const check of this.waiters) check();
  }

  // Resolves with the first output line for which `match(line)` holds (a string: contained);
  // rejects after `boundMs` or when the process exits without printing it.
  waitForLine(match, boundMs = 10_000) {
    const test = typeof match === "string" ? (line) => line.includes(match) : match;
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.output.split("\n").find((l, i, all) => i < all.length - 1 && test(l));
        if (line !== undefined) done(() => resolve(line));
        else if (!this.running) done(() => reject(new Error(`${this.argv[0]} exited before printing ${match}:\n${this.output}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no line ${match} within ${boundMs} ms:\n${this.output}`))), boundMs);
      const done = (settle) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      this.waiters.add(check);
      check();
    });
  }

  // Resolves with { code, signal } once it exited; rejects after `boundMs`.
  waitExit(boundMs = 10_000) {
    return bounded(this.exited, boundMs, `${this.argv[0]} did not exit within ${boundMs} ms:\n${this.output}`);
  }

  // SIGTERM, then SIGKILL if it is still there after `graceMs`.
  async stop(graceMs = 5_000) {
    if (!this.running) return this.exited;
    process.kill(this.pid, "SIGTERM");
    try {
      return await this.waitExit(graceMs);
    } catch {
      if (this.running) process.kill(this.pid, "SIGKILL");
      return this.exited;
    }
  }
}

export function bounded(promise, boundMs, message) {
  let timer;
  const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(message)), boundMs)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Starts flame-broker on OS-chosen loopback ports (or the endpoints given) and reads where it
// bound from its first line.
export async function startBroker(extraArgs = FAST_BROKER, { clients = "tcp://127.0.0.1:*", runners = "tcp://127.0.0.1:*" } = {}) {
  const proc = new Proc([
    binary("flame-broker"),
    ...["--clients", clients, "--runners", runners, "--endpoints-file", "-"],
    ...extraArgs,
  ]);
  const line = await proc.waitForLine('"clients"', 10_000);
  const bound = JSON.parse(line.slice(line.indexOf("{")));
  return { proc, clients: bound.clients, runners: bound.runners };
}

// Resolves once the broker has logged that a runner of `pool` is ready.
export function waitRunnerReady(broker, pool, boundMs = 10_000) {
  return broker.proc.waitForLine((l) => l.includes(`pool=${pool} runner=`) && l.includes(" ready:"), boundMs);
}

// Runs the C++ `flame` CLI to completion: { code, stdout, stderr }.
export async function runCli(args, { boundMs = 15_000, input } = {}) {
  const proc = new Proc([binary("flame"), ...args], { input });
  const { code } = await proc.waitExit(boundMs).catch(async (e) => {
    await proc.stop(0);
    throw e;
  });
  return { code, stdout: proc.stdout, stderr: proc.stderr };
}

// Polls `condition` (an async function) every `stepMs` until it holds; false after `boundMs`.
// Only for state of another process that emits no event to wait on (a broker's status).
export async function eventually(condition, boundMs = 5_000, stepMs = 20) {
  const deadline = performance.now() + boundMs;
  for (;;) {
    if (await condition()) return true;
    if (performance.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
