// The runner's core: a graph of named steps run in dependency order with bounded concurrency. A finished
// step's result is saved in the run's Store before anything depends on it, so a rerun after a crash skips it.

import type { Store } from "../store/index.js";
import { BuckleError } from "../util/errors.js";

export interface StepContext {
  /** Results of this step's dependencies, by step id. */
  deps: ReadonlyMap<string, unknown>;
  signal?: AbortSignal;
  /** Report progress of this step (a fraction in [0, 1] and/or a short message). */
  progress(fraction: number | undefined, message?: string): void;
}

export interface Step<T = unknown> {
  id: string;
  /** A short human label for progress lines. */
  label?: string;
  deps?: readonly string[];
  /** Steps of the same non-empty group never run at the same time (e.g. CPU-heavy training). */
  exclusive?: string;
  /** The step's work; its JSON-serialisable result is stored under the step id. */
  run(ctx: StepContext): Promise<T>;
}

export interface StepRecord {
  status: "done" | "failed";
  result?: unknown;
  error?: string;
  startedAt: string;
  seconds: number;
}

export type StepEvent =
  | { type: "skip"; id: string; label: string }
  | { type: "start"; id: string; label: string }
  | { type: "progress"; id: string; label: string; fraction?: number; message?: string }
  | { type: "done"; id: string; label: string; seconds: number }
  | { type: "fail"; id: string; label: string; error: string };

export interface RunStepsOptions {
  store: Store;
  /** Steps running at once (default 1). */
  concurrency?: number;
  signal?: AbortSignal;
  onEvent?: (e: StepEvent) => void;
}

const NS = "steps";

/** Check ids are unique, dependencies exist and there is no cycle; return the steps in a valid order. */
export function orderSteps(steps: readonly Step[]): Step[] {
  const byId = new Map<string, Step>();
  for (const s of steps) {
    if (byId.has(s.id)) throw new BuckleError(`two steps share the id "${s.id}"`);
    byId.set(s.id, s);
  }
  const order: Step[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (s: Step, path: string[]): void => {
    const st = state.get(s.id);
    if (st === "done") return;
    if (st === "visiting") throw new BuckleError(`steps form a cycle: ${[...path, s.id].join(" -> ")}`);
    state.set(s.id, "visiting");
    for (const d of s.deps ?? []) {
      const dep = byId.get(d);
      if (!dep) throw new BuckleError(`step "${s.id}" depends on unknown step "${d}"`);
      visit(dep, [...path, s.id]);
    }
    state.set(s.id, "done");
    order.push(s);
  };
  for (const s of steps) visit(s, []);
  return order;
}

/** The stored record of a step, if it ran in this store. */
export function stepRecord(store: Store, id: string): StepRecord | undefined {
  return store.get<StepRecord>(NS, id);
}

/**
 * Run `steps`: each starts when its dependencies are done, at most `concurrency` at once. Steps already done in
 * the store are skipped and their stored result is used. The first failure stops new steps from starting; the
 * call then rejects after the running ones settle. Returns every step's result by id.
 */
export async function runSteps(
  steps: readonly Step[],
  options: RunStepsOptions,
): Promise<Map<string, unknown>> {
  const { store, onEvent } = options;
  const ordered = orderSteps(steps);
  const limit = Math.max(1, options.concurrency ?? 1);
  const results = new Map<string, unknown>();
  const remaining = new Set(ordered.map((s) => s.id));
  const running = new Map<string, Promise<void>>();
  const busyGroups = new Set<string>();
  let failure: Error | undefined;
  const label = (s: Step): string => s.label ?? s.id;

  for (const s of ordered) {
    const rec = stepRecord(store, s.id);
    if (rec?.status === "done") {
      results.set(s.id, rec.result);
      remaining.delete(s.id);
      onEvent?.({ type: "skip", id: s.id, label: label(s) });
    }
  }

  const ready = (s: Step): boolean =>
    (s.deps ?? []).every((d) => results.has(d)) && !(s.exclusive && busyGroups.has(s.exclusive));

  const start = (s: Step): void => {
    remaining.delete(s.id);
    if (s.exclusive) busyGroups.add(s.exclusive);
    const startedAt = new Date();
    onEvent?.({ type: "start", id: s.id, label: label(s) });
    const deps = new Map((s.deps ?? []).map((d) => [d, results.get(d)] as const));
    const ctx: StepContext = {
      deps,
      signal: options.signal,
      progress: (fraction, message) =>
        onEvent?.({ type: "progress", id: s.id, label: label(s), fraction, message }),
    };
    const p = (async () => {
      try {
        const result = await s.run(ctx);
        const seconds = (Date.now() - startedAt.getTime()) / 1000;
        // JSON round trip: what later steps see now is exactly what a resumed run will read back
        const stored = result === undefined ? null : (JSON.parse(JSON.stringify(result)) as unknown);
        store.put(NS, s.id, { status: "done", result: stored, startedAt: startedAt.toISOString(), seconds });
        results.set(s.id, stored);
        onEvent?.({ type: "done", id: s.id, label: label(s), seconds });
      } catch (err) {
        const message = (err as Error)?.message ?? String(err);
        store.put(NS, s.id, {
          status: "failed",
          error: message,
          startedAt: startedAt.toISOString(),
          seconds: (Date.now() - startedAt.getTime()) / 1000,
        });
        onEvent?.({ type: "fail", id: s.id, label: label(s), error: message });
        failure ??= err instanceof Error ? err : new Error(message);
      } finally {
        if (s.exclusive) busyGroups.delete(s.exclusive);
      }
    })();
    // removed once settled, by a handler attached after it is in `running` (even a step that throws at once)
    running.set(s.id, p);
    void p.finally(() => running.delete(s.id));
  };

  while (remaining.size > 0 || running.size > 0) {
    if (!failure && !options.signal?.aborted) {
      for (const s of ordered) {
        if (running.size >= limit) break;
        if (remaining.has(s.id) && ready(s)) start(s);
      }
    }
    if (running.size === 0) {
      if (failure) throw failure;
      if (options.signal?.aborted) throw new BuckleError("the run was cancelled");
      // nothing runs and nothing can start: only possible when a dependency failed earlier
      break;
    }
    await Promise.race(running.values());
  }
  if (failure) throw failure;
  return results;
}
