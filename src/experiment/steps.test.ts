import { test } from "node:test";
import assert from "node:assert/strict";
import { Store } from "../store/index.js";
import { orderSteps, runSteps, stepRecord, type Step } from "./steps.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("steps run after their dependencies, within the concurrency limit and exclusive groups", async () => {
  const store = Store.open(":memory:");
  const log: string[] = [];
  let live = 0;
  let maxLive = 0;
  let liveTrain = 0;
  const step = (id: string, deps: string[] = [], exclusive?: string): Step => ({
    id,
    deps,
    exclusive,
    async run(ctx) {
      live++;
      if (exclusive) liveTrain++;
      assert.ok(liveTrain <= 1, "two exclusive steps overlapped");
      maxLive = Math.max(maxLive, live);
      for (const d of deps) assert.equal(ctx.deps.get(d), `r-${d}`);
      log.push(id);
      await sleep(5);
      live--;
      if (exclusive) liveTrain--;
      return `r-${id}`;
    },
  });
  const steps = [
    step("eval", ["t1", "t2"]),
    step("t1", ["curate"], "cpu"),
    step("t2", ["curate"], "cpu"),
    step("curate"),
    step("side"),
  ];
  const results = await runSteps(steps, { store, concurrency: 2 });
  assert.equal(results.get("eval"), "r-eval");
  assert.ok(log.indexOf("curate") < log.indexOf("t1") && log.indexOf("t2") < log.indexOf("eval"));
  assert.equal(maxLive, 2);
  store.close();
});

test("a rerun skips finished steps and retries the failed one", async () => {
  const store = Store.open(":memory:");
  const calls: string[] = [];
  let failNow = true;
  const steps: Step[] = [
    { id: "a", run: async () => (calls.push("a"), { n: 1 }) },
    {
      id: "b",
      deps: ["a"],
      run: async (ctx) => {
        calls.push("b");
        if (failNow) throw new Error("boom");
        return (ctx.deps.get("a") as { n: number }).n + 1;
      },
    },
    { id: "c", deps: ["b"], run: async () => (calls.push("c"), "c") },
  ];
  await assert.rejects(runSteps(steps, { store }), /boom/);
  assert.deepEqual(calls, ["a", "b"]);
  assert.equal(stepRecord(store, "b")?.status, "failed");
  failNow = false;
  const events: string[] = [];
  const results = await runSteps(steps, { store, onEvent: (e) => events.push(`${e.type}:${e.id}`) });
  assert.deepEqual(calls, ["a", "b", "b", "c"]);
  assert.equal(results.get("b"), 2);
  assert.deepEqual(events.slice(0, 2), ["skip:a", "start:b"]);
  store.close();
});

test("bad graphs are refused with the offending ids", () => {
  const noop = async () => null;
  assert.throws(() => orderSteps([{ id: "x", deps: ["y"], run: noop }]), /unknown step "y"/);
  assert.throws(
    () =>
      orderSteps([
        { id: "x", deps: ["y"], run: noop },
        { id: "y", deps: ["x"], run: noop },
      ]),
    /cycle: x -> y -> x/,
  );
  assert.throws(
    () =>
      orderSteps([
        { id: "x", run: noop },
        { id: "x", run: noop },
      ]),
    /share the id "x"/,
  );
});

test("a step that throws synchronously fails the run instead of spinning", async () => {
  const store = Store.open(":memory:");
  const steps: Step[] = [
    {
      id: "sync-throw",
      run: (() => {
        throw new Error("thrown before any await");
      }) as unknown as Step["run"],
    },
    { id: "other", run: async () => 1 },
  ];
  await assert.rejects(runSteps(steps, { store, concurrency: 2 }), /thrown before any await/);
  store.close();
});
