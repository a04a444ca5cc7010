// A flame runner for Node.js: connects a ZeroMQ DEALER to the broker's runner endpoint, says
// `ready`, and serves the functions registered with handle() (docs/PROTOCOL.md, runner side).
//
//   const runner = new Runner({ broker: "tcp://127.0.0.1:5556", pool: "text", slots: 4 });
//   runner.handle("upper", (payload) => payload.toString().toUpperCase());
//   process.on("SIGTERM", () => runner.drain());
//   const why = await runner.run(); // "drained", "stopped", "failsafe", "retired", "unauthorized"
//
// A handler is `async (payload: Buffer, { signal, jobId, mode, budgetMs }) => result`, where
// result is a string, Buffer, Uint8Array or undefined (empty). A thrown error is reported as
// `handler_error` with its message. `signal` (an AbortSignal) fires when the broker cancels the
// job or its budget runs out: the handler should then stop; one still running `cancelGraceMs`
// later makes the runner retire (it exits, so that a fresh runner can replace it).
//
// Liveness: after `welcome` the runner heartbeats every broker interval; if it hears nothing for
// interval x liveness it reconnects with backoff (100 ms doubling to 5 s, jittered), re-sending
// `ready` with the jobs it still holds; it gives up ("failsafe") after `failsafeAfterMs` without
// a broker.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { Dealer } from "zeromq";
import { curveOptions } from "./curve.js";
import { codeName, decode, encode, ErrorCode, FlameError, INFINITE_MS } from "./wire.js";

const EMPTY = Buffer.alloc(0);
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout fires at once for anything longer

export class Runner {
  #options;
  #log;
  #handlers = new Map();
  #socket = null;
  #sendChain = Promise.resolve();
  #state = "new"; // new | registering | registered | waiting (to reconnect) | done
  #draining = false;
  #leaving = false; // drained and idle: about to finish
  #jobs = new Map(); // `${instance}:${jobId}` -> { jobId, instance, controller, done }
  #instance = 0n; // the broker run that welcomed us
  #interval;
  #liveness;
  #maxPayload = 0;
  #lastHeard = 0;
  #unreachableSince = null;
  #backoff;
  #timers = new Set();
  #ticker = null;
  #finished;
  #exit;

  constructor({
    broker = "tcp://127.0.0.1:5556",
    pool = "default",
    slots = 1,
    runnerId = `${pool}-node-${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`,
    // A booted runner presents its boot token; a static one a random secret of its own, so that
    // nobody else can take over its runner id (PROTOCOL.md, "Runner registration").
    token,
    // `{ serverKey, secretKey }` (Z85 text or key files) for a broker with a [security] section:
    // a booted runner gets them as FLAME_SERVER_KEY and FLAME_SECRET_KEY.
    curve,
    heartbeatIntervalMs = 1000, // until the broker's `welcome` says otherwise
    liveness = 3,
    failsafeAfterMs = 30_000,
    drainGraceMs = 30_000,
    cancelGraceMs = 5_000,
    log = { ...console, debug() {} }, // console; pass one with `debug` to see every job
  } = {}) {
    if (!pool || slots < 1) throw new TypeError("a runner needs a pool and at least one slot");
    this.#options = { broker, pool, slots, runnerId, booted: Boolean(token), failsafeAfterMs, drainGraceMs, cancelGraceMs };
    this.#options.token = token || randomBytes(16).toString("hex");
    this.#options.curve = curveOptions(curve);
    this.#interval = heartbeatIntervalMs;
    this.#liveness = liveness;
    this.#log = log;
    this.#backoff = new Backoff(100, 5_000);
    this.#finished = new Promise((resolve) => (this.#exit = resolve));
  }

  get runnerId() {
    return this.#options.runnerId;
  }

  // Serves `name` with `handler`. Call before run().
  handle(name, handler) {
    if (this.#state !== "new") throw new Error("handle() must be called before run()");
    this.#handlers.set(name, handler);
    return this;
  }

  // Connects, registers and serves until the runner must stop; resolves with why.
  run() {
    if (this.#state === "new") {
      this.#connect();
      this.#startTicking();
    }
    return this.#finished;
  }

  // As on SIGTERM or the broker's `drain`: take nothing new, let running jobs finish within
  // `graceMs`, cancel the rest, say `leaving`, and end run() with "drained".
  drain(graceMs = this.#options.drainGraceMs, reason = "drain") {
    if (this.#draining || this.#state === "done") return;
    this.#draining = true;
    this.#log.info(`flame runner ${this.runnerId}: draining (${reason}), ${this.#jobs.size} jobs running`);
    if (this.#state === "registered") this.#send([encode("leaving", { reason, exiting: false })]);
    this.#after(graceMs, () => {
      for (const job of this.#jobs.values()) job.controller.abort(new FlameError("shutting_down", "the runner is leaving"));
      this.#after(this.#options.cancelGraceMs, () => this.#finish("drained"));
    });
    this.#finishDrainIfIdle();
  }

  // Stops now: running jobs are cancelled and not waited for.
  stop() {
    for (const job of this.#jobs.values()) job.controller.abort(new FlameError("cancelled", "the runner stopped"));
    this.#finish("stopped");
  }

  // ------------------------------------------------------------------ connection

  #connect() {
    const socket = new Dealer({ linger: 0, ...this.#options.curve });
    this.#socket = socket;
    // A refused CURVE key, or plaintext on one side only, is silent at the socket level: watch
    // the handshake (from before connecting, as a mismatch fails within the greeting).
    const refused = (event) => {
      if (socket !== this.#socket) return;
      const why = this.#options.curve.curveServerKey ? "refused our CURVE key" : "wants CURVE (FLAME_SERVER_KEY)";
      this.#log.error(`flame runner ${this.runnerId}: the broker ${why} (${event.type}); exiting`);
      this.#finish("unauthorized");
    };
    socket.events.on("handshake:error:auth", refused);
    socket.events.on("handshake:error:protocol", refused);
    socket.connect(this.#options.broker);
    this.#state = "registering";
    this.#lastHeard = performance.now(); // silence counts from the connection
    this.#unreachableSince ??= performance.now();
    this.#sendReady();
    this.#receive(socket);
  }

  #sendReady() {
    const held = [...this.#jobs.values()].map(({ jobId, instance }) => ({ jobId, instance }));
    const { runnerId, pool, slots, token } = this.#options;
    const functions = [...this.#handlers.keys()];
    this.#send([
      encode("ready", { runnerId, pool, slots, functions, token, busy: held.length, held, pid: process.pid, host: hostname() }),
    ]);
  }

  // Drops the connection and opens a fresh one after the backoff.
  #reconnect(why) {
    this.#log.warn(`flame runner ${this.runnerId}: ${why}; reconnecting`);
    this.#unreachableSince ??= this.#lastHeard; // the failsafe counts from the last sign of life
    this.#socket.close();
    this.#state = "waiting";
    this.#after(this.#backoff.next(), () => this.#state === "waiting" && this.#connect());
  }

  // Every interval: judge the broker's silence, heartbeat, and give up after failsafeAfterMs.
  #tick() {
    const now = performance.now();
    if (this.#unreachableSince !== null && now - this.#unreachableSince >= this.#options.failsafeAfterMs) {
      this.#log.error(`flame runner ${this.runnerId}: no broker for ${this.#options.failsafeAfterMs} ms; exiting`);
      return this.#finish("failsafe");
    }
    if (this.#state === "waiting") return;
    if (now - this.#lastHeard >= this.#interval * this.#liveness) return this.#reconnect("the broker is silent");
    if (this.#state === "registered") {
      this.#send([encode("heartbeat", { sentMs: BigInt(Date.now()), intervalMs: this.#interval })]);
    }
  }

  async #receive(socket) {
    try {
      for await (const [header, payload = EMPTY] of socket) {
        if (socket !== this.#socket || this.#state === "done") break;
        this.#onMessage(header, payload);
      }
    } catch (e) {
      if (!socket.closed) this.#log.error(`flame runner ${this.runnerId}: receive failed: ${e.message}`);
    }
  }

  #onMessage(header, payload) {
    this.#lastHeard = performance.now(); // any message is a sign of life, even one we cannot read
    const m = decode(header);
    if (m.error) return this.#log.warn(`flame runner ${this.runnerId}: dropping a message: ${m.error}`);
    if (m.kind === "error" && m.code === ErrorCode.UNAUTHORIZED) return this.#onUnauthorized(m);
    this.#backoff.reset();
    switch (m.kind) {
      case "welcome":
        return this.#onWelcome(m);
      case "job":
        return this.#onJob(m, payload);
      case "cancelJob":
        this.#jobs.get(`${this.#instance}:${m.jobId}`)?.controller.abort(new FlameError("cancelled", "cancelled"));
        return;
      case "drain":
        return this.drain(m.graceMs, "the broker asked");
      case "heartbeat":
        return;
      case "error":
        return this.#onError(m);
      default:
        this.#log.warn(`flame runner ${this.runnerId}: unexpected ${m.kind}`);
    }
  }

  #onWelcome(m) {
    this.#state = "registered";
    this.#unreachableSince = null;
    this.#instance = m.instance;
    this.#interval = m.heartbeatIntervalMs || this.#interval;
    this.#liveness = m.liveness || this.#liveness;
    this.#maxPayload = Number(m.maxPayloadBytes);
    this.#startTicking(); // at the broker's interval from now on, not after our default one
    this.#log.info(`flame runner ${this.runnerId}: registered in pool ${this.#options.pool} (${this.#options.slots} slots)`);
    // jobDone messages that could not be sent while we were away (their jobs were in `held`).
    for (const [key, job] of this.#jobs) {
      if (!job.done) continue;
      this.#send(job.done);
      this.#jobs.delete(key);
    }
    if (this.#draining) this.#send([encode("leaving", { reason: "drain", exiting: false })]);
    this.#finishDrainIfIdle();
  }

  #onError(m) {
    const code = codeName(m.code);
    if (code === "unknown_peer") {
      // The broker does not know this connection (it restarted, or forgot us): register again.
      this.#state = "registering";
      return this.#sendReady();
    }
    if (code === "shutting_down") return this.#reconnect("the broker is shutting down");
    this.#log.warn(`flame runner ${this.runnerId}: the broker says ${code}: ${m.message}`);
  }

  #onUnauthorized(m) {
    if (this.#options.booted) {
      this.#log.error(`flame runner ${this.runnerId}: boot token refused (${m.message}); exiting`);
      return this.#finish("unauthorized");
    }
    // A static runner is refused while its previous connection still holds the runner id: try
    // again, ever more slowly (a sign of life, but not a success: the backoff is not reset).
    this.#reconnect(`runner id refused (${m.message})`);
  }

  // ------------------------------------------------------------------ jobs

  #onJob(m, payload) {
    const key = `${this.#instance}:${m.jobId}`;
    const refuse = (code, message) =>
      this.#send([encode("jobDone", { jobId: m.jobId, code, message, instance: this.#instance })]);
    if (this.#draining) return refuse(ErrorCode.SHUTTING_DOWN, "the runner is leaving");
    const handler = this.#handlers.get(m.function);
    if (!handler) return refuse(ErrorCode.UNKNOWN_FUNCTION, `no function ${m.function} here`);
    if (this.#jobs.size >= this.#options.slots || this.#jobs.has(key)) {
      return refuse(ErrorCode.INTERNAL, `job ${m.jobId} beyond ${this.#options.slots} slots`);
    }
    const job = { jobId: m.jobId, instance: this.#instance, controller: new AbortController(), done: null };
    this.#jobs.set(key, job);
    this.#log.debug(`flame runner ${this.runnerId}: job ${m.jobId} ${m.function} started`);
    this.#runJob(job, key, handler, m, payload);
  }

  async #runJob(job, key, handler, m, payload) {
    const { signal } = job.controller;
    const timers = [];
    // A budget beyond what a Node timer holds (~24.8 days) is left to the broker, which sends
    // cancelJob when it runs out.
    if (m.budgetMs !== INFINITE_MS && m.budgetMs <= MAX_TIMER_MS) {
      timers.push(setTimeout(() => job.controller.abort(new FlameError("timeout", "budget exhausted")), m.budgetMs));
    }
    // A handler that ignores its signal past the grace makes the runner retire.
    signal.addEventListener("abort", () => {
      const grace = setTimeout(() => this.#retire(job), this.#options.cancelGraceMs);
      grace.unref();
      timers.push(grace);
    });
    let code = ErrorCode.NONE;
    let message = "";
    let result = EMPTY;
    try {
      result = toBuffer(await handler(payload, { signal, jobId: m.jobId, mode: m.mode, budgetMs: m.budgetMs }));
      if (this.#maxPayload && result.length > this.#maxPayload) {
        [code, message] = [ErrorCode.PAYLOAD_TOO_LARGE, `result of ${result.length} bytes, limit ${this.#maxPayload}`];
      }
    } catch (e) {
      [code, message] = [ErrorCode.HANDLER_ERROR, String(e?.message ?? e)];
    } finally {
      timers.forEach(clearTimeout);
    }
    if (signal.aborted) {
      // Cancelled, out of time or leaving: the outcome says so, whatever the handler returned.
      const reason = signal.reason;
      code = ErrorCode[String(reason?.code).toUpperCase()] ?? ErrorCode.CANCELLED;
      message = reason?.message ?? "cancelled";
    }
    // Text on the wire must be valid UTF-8: capnp-es encodes with TextEncoder, which turns the
    // only invalid thing a JS string can hold (a lone surrogate) into U+FFFD.
    const header = encode("jobDone", { jobId: job.jobId, code, message, instance: job.instance });
    job.done = code === ErrorCode.NONE ? [header, result] : [header];
    if (this.#state === "done") return;
    if (this.#state === "registered") {
      this.#send(job.done);
      this.#jobs.delete(key);
    } // else: kept (and listed in `held`) until the next `welcome`
    this.#finishDrainIfIdle();
  }

  #retire(job) {
    if (this.#state === "done" || job.done) return;
    this.#log.error(`flame runner ${this.runnerId}: job ${job.jobId} ignored cancellation; retiring`);
    this.#finish("retired");
  }

  // Idle while draining: leave one heartbeat interval later, not at once. A job the broker sent
  // before it read our `leaving{exiting=false}` may still be on its way; refused meanwhile with
  // `shuttingDown`, it is queued again for another runner, where after `leaving{exiting=true}`
  // it would fail with `runnerLost`.
  #finishDrainIfIdle() {
    if (this.#draining && this.#state === "registered" && this.#jobs.size === 0 && !this.#leaving) {
      this.#leaving = true;
      this.#after(this.#interval, () => this.#finish("drained"));
    }
  }

  // ------------------------------------------------------------------ the end

  async #finish(why) {
    if (this.#state === "done") return;
    const wasRegistered = this.#state === "registered";
    this.#state = "done";
    for (const timer of this.#timers) clearTimeout(timer);
    clearTimeout(this.#ticker);
    if (wasRegistered) this.#send([encode("leaving", { reason: why, exiting: true })]);
    // Let `leaving` go out, but do not wait for a send that cannot complete (no connection).
    await Promise.race([this.#sendChain, new Promise((resolve) => setTimeout(resolve, 1_000))]);
    if (this.#socket && !this.#socket.closed) {
      this.#socket.linger = 1000; // let `leaving` reach the broker
      this.#socket.close();
    }
    this.#log.info(`flame runner ${this.runnerId}: exiting (${why})`);
    this.#exit(why);
  }

  // ------------------------------------------------------------------ helpers

  // Sends frames on the current socket, in order (zeromq allows one send in flight).
  #send(frames) {
    const socket = this.#socket;
    this.#sendChain = this.#sendChain
      .then(() => (socket.closed ? undefined : socket.send(frames)))
      .catch((e) => socket.closed || this.#log.error(`flame runner ${this.runnerId}: send failed: ${e.message}`));
  }

  #after(ms, fn) {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  // (Re)arms the tick every #interval; `welcome` restarts it when it brings a new interval.
  #startTicking() {
    clearTimeout(this.#ticker);
    this.#ticker = setTimeout(() => {
      this.#tick();
      if (this.#state !== "done") this.#startTicking();
    }, this.#interval);
  }
}

function toBuffer(value) {
  if (value === undefined || value === null) return EMPTY;
  if (typeof value === "string") return Buffer.from(value);
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`a handler returned ${typeof value}; return a string, Buffer or Uint8Array`);
}

// Reconnect delays: from min, doubling up to max, each shortened at random by up to a quarter
// (never below min) so that runners that lost the same broker do not return in lockstep.
class Backoff {
  #min;
  #max;
  #next;
  constructor(min, max) {
    [this.#min, this.#max, this.#next] = [min, max, min];
  }
  next() {
    const delay = Math.max(this.#min, this.#next * (1 - Math.random() / 4));
    this.#next = Math.min(this.#max, this.#next * 2);
    return delay;
  }
  reset() {
    this.#next = this.#min;
  }
}
