// A flame client for Node.js: submits jobs to a broker's client endpoint over a ZeroMQ DEALER
// (docs/PROTOCOL.md, client side).
//
//   const client = new Client({ broker: "tcp://127.0.0.1:5555" });
//   const bytes = await client.call("thumbs", "resize", image, { timeout: 30_000 });
//   await client.close();
//
// Every request settles exactly once: with the broker's answer, with a FlameError carrying the
// broker's code (`timeout`, `unknown_pool`, `handler_error`, ...), or locally:
// - `timeout` when a call or place with a finite timeout is not answered by timeout + 2 heartbeat
//   intervals (a best-effort `cancel` is sent); not for a call that may be retried (idempotent or
//   a retry flag): the broker's retries and backoffs may outlast that, so liveness bounds it;
// - `cancelled` when its AbortSignal fires (a `cancel` is sent, the broker stops the job);
// - `broker_unreachable` when, while work is outstanding, nothing is heard from the broker for
//   heartbeatIntervalMs x liveness, or when the broker restarted (its heartbeats carry a new
//   instance) and so forgot our requests;
// - `payload_too_large` for a payload over the limit the broker announces in its heartbeats;
// - `unauthorized` when a CURVE broker refuses our key (the next request tries a fresh socket).
// While anything is outstanding (a request, a stop, a child it watches, an event subscription)
// the client heartbeats every interval, adopting the broker's interval when it is shorter: the
// broker sends `childExited` and events only to a client alive by its liveness rule. An idle
// client sends nothing.
import { Dealer } from "zeromq";
import { curveOptions } from "./curve.js";
import { codeName, decode, encode, eventKindName, FlameError, INFINITE_MS, Mode } from "./wire.js";

const EMPTY = Buffer.alloc(0);
const HOLD_PAYLOAD_OVER = 1 << 20; // payloads over this wait until the broker told its limit
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout fires at once for anything longer

export class Client {
  #broker;
  #curve;
  #socket = null; // opened on construction, and again after a refused CURVE handshake
  #log;
  #interval; // heartbeat interval in ms: ours, or the broker's when smaller
  #liveness;
  #nextRequestId = 1n;
  #pending = new Map(); // requestId -> { resolve, reject, onAnswer, linked, cleanup }
  #stops = new Map(); // childId -> { promise, resolve, reject }
  #children = new Map(); // childId of a child we placed -> { requestId, linked, exited }
  #subscriptions = new Map(); // requestId -> { onEvent, onEnd, cancelling, done, resolveDone }
  #sendChain = Promise.resolve();
  #ticker = null;
  #lastHeard = 0; // performance.now() of the broker's last message, or of when work began
  #brokerInstance = 0n;
  #maxPayload = 0;
  #limitWaiters = [];
  #closed = false;
  #receiving;

  // `curve`: `{ serverKey, secretKey }` (Z85 text or key files) for a broker with a [security]
  // section; without it the connection is plaintext.
  constructor({ broker = "tcp://127.0.0.1:5555", heartbeatIntervalMs = 1000, liveness = 3, curve, log = console } = {}) {
    this.#interval = Math.max(1, heartbeatIntervalMs);
    this.#liveness = Math.max(1, liveness);
    this.#log = log;
    this.#broker = broker;
    this.#curve = curveOptions(curve);
    this.#open();
  }

  // Runs `fn` in `pool` and resolves with its result bytes (a Buffer). `timeout` in ms covers
  // queueing and running (0 = the pool's default, Infinity = none). `link` (default true) ties
  // the job to this client: the broker cancels it if the client goes away.
  //
  // Retries (PROTOCOL.md, Retries; at least once: only for work safe to repeat): `retries` in
  // all (0 = one), for a lost runner when `idempotent`, for a failed function when
  // `retryHandlerError`; `retryTimeout` asks for a retry when the run budget runs out, which the
  // broker grants only to split budgets (flame's C++ client), not to this client's one budget
  // from receipt. `retryBackoffMs` (doubling per retry, jittered) up to `retryBackoffMaxMs`;
  // 0 = the pool's defaults. The answer is the first success or the last failure.
  call(pool, fn, payload = EMPTY, options = {}) {
    return this.#submit(Mode.CALL, pool, fn, payload, { ...options, link: options.link ?? true }, (m, bytes) =>
      m.kind === "result" ? bytes : undefined,
    );
  }

  // Queues `fn` in `pool` and resolves with the job id (a BigInt) once the broker accepted it.
  // Its outcome is not sent back. It runs at most once, unless given the retry options of
  // call(). Unlinked unless told otherwise.
  cast(pool, fn, payload = EMPTY, options = {}) {
    return this.#submit(Mode.CAST, pool, fn, payload, { ...options, link: options.link ?? false }, (m) =>
      m.kind === "accepted" ? m.jobId : undefined,
    );
  }

  // Starts a long-running child and resolves with `{ childId, runnerId, exited }` once a runner
  // runs it. `timeout` 0 = infinite. `exited` resolves with `{ code, message }` when the child
  // ends (`code` "none" = it returned; "cancelled" after a stop): the broker tells its placer,
  // linked or not, while the placer is connected, so the client heartbeats while it watches a
  // child. `link` (default true) decides what happens when this client goes away: a linked
  // child is stopped by the broker (and by close()); an unlinked one keeps running, and on
  // close() its `exited` resolves with `shutting_down` (we stopped watching, it did not end).
  // If the broker becomes unreachable, `exited` resolves with `broker_unreachable`.
  place(pool, fn, payload = EMPTY, { timeout = 0, link = true, signal } = {}) {
    return this.#submit(Mode.PLACE, pool, fn, payload, { timeout, link, signal }, (m) => {
      if (m.kind !== "placed") return undefined;
      const child = { requestId: m.requestId, linked: link };
      const exited = new Promise((resolve) => (child.exited = resolve));
      this.#children.set(m.childId, child);
      return { childId: m.childId, runnerId: m.runnerId, exited };
    });
  }

  // Subscribes to the broker's events (PROTOCOL.md, Events) of `pool` (empty or undefined:
  // every pool). Resolves, once the broker answers `subscribed`, with `{ id, lastSeq, cancel }`:
  // `id` the subscription's request id, `lastSeq` the broker's latest event number then (0 =
  // none). Rejects with the broker's refusal (`unknown_pool`, `bad_request` past 16 per client).
  //
  // `onEvent(event)` gets each event's fields: `requestId`, `seq`, `timeMs`, `kind` (the schema's
  // number) and `kindName` (`runner_booting`, `runner_ready`, `runner_draining`,
  // `runner_stopped`, `runner_lost`, `boot_failed`, `pool_changed`, `queue_full`, `job_retried`;
  // `unknown` for a kind newer than our schema), `pool`, `runnerId`, `message`, `jobId`,
  // `attempt`, `delayMs`, `runners`, `booting`. A subscription is work: the client heartbeats
  // while one is open. `onEnd(error)` is called once when it ends, with a FlameError:
  // `cancelled` after `cancel()` (the broker confirmed) or close(), `broker_unreachable` when
  // the broker went silent or restarted (subscribe again). `cancel()` sends `cancel`, delivers no
  // more events, and resolves once the subscription has ended.
  async subscribe(pool, onEvent, { onEnd } = {}) {
    if (typeof onEvent !== "function") throw new TypeError("subscribe needs an onEvent function");
    this.#ensureOpen();
    const requestId = this.#nextRequestId++;
    // Linked: close() cancels it even before the broker's `subscribed` arrives.
    const answer = this.#expect(requestId, { linked: true }, (m) => {
      if (m.kind !== "subscribed") return undefined;
      const sub = { onEvent, onEnd, cancelling: false };
      sub.done = new Promise((resolve) => (sub.resolveDone = resolve));
      this.#subscriptions.set(requestId, sub);
      return { id: requestId, lastSeq: m.lastSeq, cancel: () => this.#cancelSubscription(requestId) };
    });
    this.#send("subscribe", { requestId, pool: pool ?? "" });
    return answer;
  }

  // Stops a placed child (any client's) and resolves once it has ended; rejects with
  // `not_found` for an unknown or finished child.
  async stop(childId) {
    const id = BigInt(childId);
    const existing = this.#stops.get(id);
    if (existing) return existing.promise;
    this.#ensureOpen();
    const entry = {};
    entry.promise = new Promise((resolve, reject) => Object.assign(entry, { resolve, reject }));
    this.#stops.set(id, entry);
    this.#beginWork();
    this.#send("stopChild", { childId: id });
    return entry.promise;
  }

  // Resolves with the broker's pools: `[{ name, queued, slotsUsed, slotsTotal, runners, ... }]`.
  async status() {
    this.#ensureOpen();
    const requestId = this.#nextRequestId++;
    const answer = this.#expect(requestId, { linked: false }, (m) => (m.kind === "statusReply" ? m.pools : undefined));
    this.#send("statusRequest", { requestId });
    return answer;
  }

  // Cancels this client's linked work (the broker stops linked children), fails what is
  // outstanding with `cancelled`, and closes the socket.
  // Unlinked children keep running: their `exited` resolves with `shutting_down`.
  async close() {
    if (this.#closed) return;
    for (const [requestId, p] of this.#pending) if (p.linked) this.#send("cancel", { requestId });
    for (const { requestId, linked } of this.#children.values()) if (linked) this.#send("cancel", { requestId });
    for (const requestId of this.#subscriptions.keys()) this.#send("cancel", { requestId });
    for (const [childId, child] of this.#children) {
      if (child.linked) continue;
      this.#children.delete(childId);
      child.exited({ code: "shutting_down", message: "the client stopped watching; the child keeps running" });
    }
    this.#failEverything(new FlameError("cancelled", "the client was closed"));
    this.#closed = true;
    // Let the cancels go out, but do not wait for a send that cannot complete (no connection).
    await Promise.race([this.#sendChain, new Promise((resolve) => setTimeout(resolve, 200))]);
    this.#socket?.close(); // this also ends a send still waiting
    await this.#receiving;
  }

  #open() {
    const socket = new Dealer({ linger: 200, ...this.#curve });
    // A refused CURVE key, or plaintext on one side only, is silent at the socket level: watch
    // the handshake (from before connecting, as a mismatch fails within the greeting).
    const refused = (event) => {
      if (socket !== this.#socket) return;
      this.#socket = null; // libzmq does not retry such a socket: the next request opens one
      socket.close();
      const why = this.#curve.curveServerKey ? "refused our CURVE key" : "wants CURVE (give `curve` keys)";
      this.#failEverything(new FlameError("unauthorized", `the broker ${why} (${event.type})`));
    };
    socket.events.on("handshake:error:auth", refused);
    socket.events.on("handshake:error:protocol", refused);
    socket.connect(this.#broker);
    this.#socket = socket;
    this.#receiving = this.#receive(socket);
  }

  // ------------------------------------------------------------------ requests

  async #submit(mode, pool, fn, payload, options, onAnswer) {
    const { timeout = 0, idempotent = false, retries = 0, link, signal } = options;
    const { retryHandlerError = false, retryTimeout = false, retryBackoffMs = 0, retryBackoffMaxMs = 0 } = options;
    this.#ensureOpen();
    const bytes = toBytes(payload);
    if (bytes.length > HOLD_PAYLOAD_OVER && !this.#maxPayload) await this.#payloadLimit();
    if (signal?.aborted) throw new FlameError("cancelled", "aborted before it was sent");
    if (this.#maxPayload && bytes.length > this.#maxPayload) {
      throw new FlameError("payload_too_large", `${bytes.length} bytes, the broker accepts ${this.#maxPayload}`);
    }
    const timeoutMs = wireMs(timeout); // Infinity: none
    const requestId = this.#nextRequestId++;
    // A safety net in case the broker's answer never comes; the broker enforces the timeout.
    // None when the broker may retry: its retries and their backoffs must not be cut short
    // (the liveness rule still fails the call if the broker goes silent).
    const mayRetry = mode !== Mode.PLACE && Boolean(idempotent || retryHandlerError || retryTimeout);
    const localDeadline =
      mode !== Mode.CAST && !mayRetry && timeoutMs > 0 && timeoutMs + 2 * this.#interval <= MAX_TIMER_MS
        ? timeoutMs + 2 * this.#interval
        : undefined;
    const answer = this.#expect(requestId, { linked: link, localDeadline, signal }, onAnswer);
    const submit = { requestId, mode, pool, function: fn, timeoutMs, idempotent: Boolean(idempotent), link };
    if (mode !== Mode.PLACE) {
      Object.assign(submit, {
        retries: Math.min(255, Math.max(0, Math.round(retries))),
        retryHandlerError: Boolean(retryHandlerError),
        retryTimeout: Boolean(retryTimeout),
        retryBackoffMs: wireMs(retryBackoffMs),
        retryBackoffMaxMs: wireMs(retryBackoffMaxMs),
      });
    }
    this.#send("submit", submit, bytes);
    return answer;
  }

  // Registers a pending request; the promise settles through #finish().
  #expect(requestId, { linked, localDeadline, signal }, onAnswer) {
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, onAnswer, linked, cleanup: () => {} };
      const timers = [];
      if (localDeadline !== undefined) {
        timers.push(
          setTimeout(() => {
            this.#send("cancel", { requestId });
            this.#finish(requestId, new FlameError("timeout", `no answer from the broker within ${localDeadline} ms`));
          }, localDeadline),
        );
      }
      const onAbort = () => {
        this.#send("cancel", { requestId });
        this.#finish(requestId, new FlameError("cancelled", "aborted by the caller"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      entry.cleanup = () => {
        timers.forEach(clearTimeout);
        signal?.removeEventListener("abort", onAbort);
      };
      this.#pending.set(requestId, entry);
      this.#beginWork();
    });
  }

  #finish(requestId, outcome) {
    const entry = this.#pending.get(requestId);
    if (!entry) return; // already settled locally (timeout, abort): a late answer
    this.#pending.delete(requestId);
    entry.cleanup();
    if (outcome instanceof Error) entry.reject(outcome);
    else entry.resolve(outcome);
  }

  // Resolves with the broker's payload limit, asking with a heartbeat (bounded by liveness).
  #payloadLimit() {
    const bound = this.#interval * this.#liveness;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new FlameError("broker_unreachable", `no answer from the broker within ${bound} ms`));
      }, bound);
      this.#limitWaiters.push(() => {
        clearTimeout(timer);
        resolve(this.#maxPayload);
      });
      this.#send("heartbeat", { sentMs: BigInt(Date.now()), intervalMs: this.#interval });
    });
  }

  // ------------------------------------------------------------------ broker messages

  async #receive(socket) {
    try {
      for await (const frames of socket) this.#onFrames(frames);
    } catch (e) {
      if (!socket.closed) this.#log.error(`flame client: receive failed: ${e.message}`);
    }
  }

  #onFrames([delimiter, header, payload = EMPTY]) {
    this.#lastHeard = performance.now(); // any message is a sign of life, even one we cannot read
    if (delimiter?.length !== 0 || !header) {
      this.#log.warn("flame client: dropping a message without the empty delimiter frame");
      return;
    }
    const m = decode(header);
    if (m.error) {
      this.#log.warn(`flame client: dropping a message from the broker: ${m.error}`);
      return;
    }
    switch (m.kind) {
      case "error":
        return this.#onError(m);
      case "stopped":
        this.#stops.get(m.childId)?.resolve();
        this.#stops.delete(m.childId);
        return;
      case "childExited": {
        const child = this.#children.get(m.childId);
        this.#children.delete(m.childId);
        child?.exited({ code: codeName(m.code), message: m.message });
        return;
      }
      case "event": {
        const sub = this.#subscriptions.get(m.requestId);
        if (!sub || sub.cancelling) return; // ended, or cancelled: what was already on its way
        const { kind, version, eventKind, ...fields } = m;
        const event = { ...fields, kind: eventKind, kindName: eventKindName(eventKind) };
        try {
          sub.onEvent(event);
        } catch (e) {
          this.#log.error(`flame client: an onEvent handler threw: ${e?.stack ?? e}`);
        }
        return;
      }
      case "heartbeat":
        return this.#onHeartbeat(m);
      default: {
        const entry = this.#pending.get(m.requestId);
        if (!entry) return; // the answer to a request we already settled locally
        const value = entry.onAnswer(m, payload);
        if (value !== undefined) this.#finish(m.requestId, value);
        else this.#log.warn(`flame client: unexpected ${m.kind} for request ${m.requestId}`);
      }
    }
  }

  #onError(m) {
    const error = new FlameError(codeName(m.code), m.message, { jobId: m.jobId });
    if (this.#pending.has(m.requestId)) return this.#finish(m.requestId, error);
    // A subscription ended by the broker: the answer to our `cancel` (`cancelled`; `not_found`
    // if it had already dropped it), or its own decision.
    const sub = this.#subscriptions.get(m.requestId);
    if (sub) {
      const why = sub.cancelling ? new FlameError("cancelled", "the subscription was cancelled") : error;
      return this.#endSubscription(m.requestId, why);
    }
    // A child ended by `cancel` of its place request: answered on that request id.
    for (const [childId, child] of this.#children) {
      if (child.requestId !== m.requestId) continue;
      this.#children.delete(childId);
      return child.exited({ code: error.code, message: m.message });
    }
    // stopChild has no request id: its `notFound` names the child in jobId.
    const stop = m.requestId === 0n && this.#stops.get(m.jobId);
    if (stop) {
      this.#stops.delete(m.jobId);
      return stop.reject(error);
    }
    // Answers to requests we already settled (a cancel we sent) need no action.
    if (m.requestId === 0n) this.#log.warn(`flame client: the broker refused a message: ${error.message}`);
  }

  #onHeartbeat(m) {
    if (m.instance !== 0n) {
      if (this.#brokerInstance !== 0n && m.instance !== this.#brokerInstance) {
        this.#failEverything(
          new FlameError("broker_unreachable", "the broker restarted: the request was lost (it may or may not have run)"),
        );
      }
      this.#brokerInstance = m.instance;
    }
    if (m.intervalMs > 0 && m.intervalMs < this.#interval) {
      // Adopt the broker's shorter interval now, not when the tick armed with ours comes.
      this.#interval = m.intervalMs;
      if (this.#ticker) {
        clearTimeout(this.#ticker);
        this.#ticker = setTimeout(() => this.#tick(), this.#interval);
      }
    }
    if (m.maxPayloadBytes > 0n) this.#maxPayload = Number(m.maxPayloadBytes);
    this.#limitWaiters.splice(0).forEach((wake) => wake());
  }

  // ------------------------------------------------------------------ liveness

  #busy() {
    return this.#pending.size + this.#stops.size + this.#children.size + this.#subscriptions.size > 0;
  }

  // Called when work is added: an idle client starts heartbeating (the first one at once) and
  // counts the broker's silence from now, not from its last message (which may be old).
  #beginWork() {
    if (this.#ticker) return;
    this.#lastHeard = performance.now();
    this.#tick();
  }

  #tick() {
    this.#ticker = null;
    if (!this.#busy() || this.#closed) return;
    const silentFor = performance.now() - this.#lastHeard;
    if (silentFor >= this.#interval * this.#liveness) {
      this.#failEverything(
        new FlameError("broker_unreachable", `no message from the broker for ${Math.round(silentFor)} ms`),
      );
      return;
    }
    this.#send("heartbeat", { sentMs: BigInt(Date.now()), intervalMs: this.#interval });
    this.#ticker = setTimeout(() => this.#tick(), this.#interval);
  }

  #failEverything(error) {
    for (const requestId of [...this.#pending.keys()]) this.#finish(requestId, error);
    for (const stop of this.#stops.values()) stop.reject(error);
    this.#stops.clear();
    for (const child of this.#children.values()) child.exited({ code: error.code, message: error.message });
    this.#children.clear();
    for (const requestId of [...this.#subscriptions.keys()]) this.#endSubscription(requestId, error);
    clearTimeout(this.#ticker);
    this.#ticker = null;
  }

  // ------------------------------------------------------------------ subscriptions

  #cancelSubscription(requestId) {
    const sub = this.#subscriptions.get(requestId);
    if (!sub) return Promise.resolve(); // already ended
    if (!sub.cancelling) {
      sub.cancelling = true; // no more events; it ends when the broker answers (or liveness)
      this.#send("cancel", { requestId });
    }
    return sub.done;
  }

  // Ends a subscription once: onEnd(error), then cancel()'s promise resolves.
  #endSubscription(requestId, error) {
    const sub = this.#subscriptions.get(requestId);
    if (!sub) return;
    this.#subscriptions.delete(requestId);
    try {
      sub.onEnd?.(error);
    } catch (e) {
      this.#log.error(`flame client: an onEnd handler threw: ${e?.stack ?? e}`);
    }
    sub.resolveDone();
  }

  // ------------------------------------------------------------------ output

  #ensureOpen() {
    if (this.#closed) throw new FlameError("cancelled", "the client is closed");
    if (!this.#socket) this.#open();
  }

  // Sends [delimiter, header, payload?] in order. zeromq allows one send in flight per socket.
  #send(kind, fields, payload) {
    const frames = payload === undefined ? [EMPTY, encode(kind, fields)] : [EMPTY, encode(kind, fields), payload];
    const socket = this.#socket;
    this.#sendChain = this.#sendChain
      .then(() => (socket && !socket.closed ? socket.send(frames) : undefined))
      .catch((e) => socket?.closed || this.#log.error(`flame client: send failed: ${e.message}`));
  }
}

// Milliseconds as the wire's UInt32: rounded, 0 at least, Infinity (or more) = 0xFFFFFFFF.
function wireMs(ms) {
  return Math.min(INFINITE_MS, Math.max(0, Math.round(Number(ms) || 0)));
}

// A string (sent as UTF-8), Buffer or Uint8Array (sent as is, not copied); null: empty.
function toBytes(payload) {
  if (payload === null || payload === undefined) return EMPTY;
  if (typeof payload === "string") return Buffer.from(payload);
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  throw new TypeError(`a payload is a string, Buffer or Uint8Array, not ${typeof payload}`);
}

export { FlameError } from "./wire.js";
