// Request scheduling over several base URLs: at most `concurrency` requests in flight per server, new work
// to the least-busy live server, failing servers taken out for a cool-down, and the retry/backoff policy.

import { BuckleError } from "../../util/errors.js";

export interface RetryPolicy {
  /** Retries after the first attempt (so maxRetries + 1 attempts in all). */
  maxRetries: number;
  /** First backoff delay; doubles on each retry. */
  baseDelayMs: number;
  /** Cap of one backoff delay. */
  maxDelayMs: number;
  /** A Retry-After longer than this is not waited for: the request fails instead. */
  maxRetryAfterMs: number;
}

/**
 * Delay before retry number `retry` (0-based): min(maxDelay, base * 2^retry) with "equal jitter" (a uniform
 * draw in [half, full]); a server's Retry-After raises it (never lowers it).
 */
export function backoffDelay(
  policy: RetryPolicy,
  retry: number,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  const jittered = ceiling / 2 + random() * (ceiling / 2);
  return Math.round(Math.max(jittered, retryAfterMs ?? 0));
}

export interface ServerState {
  readonly url: string;
  /** Requests now in flight on this server. */
  outstanding: number;
  /** Out of rotation until this time (ms since epoch); 0 when live. */
  downUntil: number;
  /** Failures since the last success. */
  consecutiveFailures: number;
  /** Attempts sent to this server over its lifetime (for tests and diagnostics). */
  attempts: number;
}

interface Waiter {
  resolve: (server: ServerState) => void;
  reject: (err: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** Thrown to waiters when the pool is disposed or their signal fires. */
export class PoolClosedError extends BuckleError {}

/** Slots over the servers. acquire() resolves with the live server that has the fewest requests in flight. */
export class ServerPool {
  readonly servers: ServerState[];
  private readonly waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    urls: readonly string[],
    readonly concurrency: number,
    /** How long a server stays out after it is marked down. */
    readonly cooldownMs: number,
    /** Timeouts and 5xx answers in a row that take a server out (connection failures do at once). */
    readonly failuresBeforeCooldown = 3,
  ) {
    this.servers = urls.map((url) => ({
      url,
      outstanding: 0,
      downUntil: 0,
      consecutiveFailures: 0,
      attempts: 0,
    }));
  }

  /** Wait for a slot; FIFO among waiters. */
  acquire(signal?: AbortSignal): Promise<ServerState> {
    if (this.closed) return Promise.reject(new PoolClosedError("the model was disposed"));
    return new Promise<ServerState>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal };
      if (signal) {
        if (signal.aborted) {
          reject(new PoolClosedError("cancelled"));
          return;
        }
        waiter.onAbort = () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new PoolClosedError("cancelled"));
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.waiters.push(waiter);
      this.pump();
    });
  }

  release(server: ServerState): void {
    server.outstanding--;
    this.pump();
  }

  /** Record an attempt's outcome. `hard`: a connection failure, which takes the server out at once. */
  report(server: ServerState, outcome: "ok" | "soft-failure" | "hard-failure", downForMs?: number): void {
    if (outcome === "ok") {
      server.consecutiveFailures = 0;
      server.downUntil = 0;
      return;
    }
    server.consecutiveFailures++;
    if (outcome === "hard-failure" || server.consecutiveFailures >= this.failuresBeforeCooldown) {
      server.downUntil = Date.now() + (downForMs ?? this.cooldownMs);
    } else if (downForMs !== undefined) {
      // A Retry-After on a rate limit: keep new work off this server for that long.
      server.downUntil = Math.max(server.downUntil, Date.now() + downForMs);
    }
  }

  /** Refuse new work and fail the waiters. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.waiters.splice(0)) {
      if (w.onAbort) w.signal?.removeEventListener("abort", w.onAbort);
      w.reject(new PoolClosedError("the model was disposed"));
    }
  }

  private pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = Date.now();
    while (this.waiters.length > 0) {
      let best: ServerState | undefined;
      for (const s of this.servers) {
        if (s.downUntil > now || s.outstanding >= this.concurrency) continue;
        if (!best || s.outstanding < best.outstanding) best = s;
      }
      if (!best) break;
      const waiter = this.waiters.shift() as Waiter;
      if (waiter.onAbort) waiter.signal?.removeEventListener("abort", waiter.onAbort);
      best.outstanding++;
      best.attempts++;
      waiter.resolve(best);
    }
    if (this.waiters.length > 0) {
      // Every server is full or cooling down: wake when the first cool-down ends (slot releases pump too).
      const wakes = this.servers.filter((s) => s.downUntil > now).map((s) => s.downUntil);
      if (wakes.length > 0) {
        this.timer = setTimeout(() => this.pump(), Math.max(1, Math.min(...wakes) - now));
      }
    }
  }
}
