// Unit tests of the scheduling and HTTP helpers: backoff with jitter, Retry-After parsing, base URL rules,
// and the pool's least-outstanding choice, per-server limit and cool-down.

import { test } from "node:test";
import assert from "node:assert/strict";
import { normalizeBaseUrl, parseRetryAfter } from "./http.js";
import { backoffDelay, ServerPool, type RetryPolicy } from "./pool.js";
import { InputError } from "../../util/errors.js";

const policy: RetryPolicy = { maxRetries: 4, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000 };

test("backoff doubles per retry, stays within [half, full] of its ceiling, is capped, honours Retry-After", () => {
  assert.equal(
    backoffDelay(policy, 0, undefined, () => 0),
    50,
  );
  assert.equal(
    backoffDelay(policy, 0, undefined, () => 1),
    100,
  );
  assert.equal(
    backoffDelay(policy, 2, undefined, () => 1),
    400,
  );
  assert.equal(
    backoffDelay(policy, 10, undefined, () => 1),
    1000,
  );
  assert.equal(
    backoffDelay(policy, 10, undefined, () => 0),
    500,
  );
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(policy, 3);
    assert.ok(d >= 400 && d <= 800, `delay ${d}`);
  }
  // A Retry-After raises the delay, never lowers it.
  assert.equal(
    backoffDelay(policy, 0, 2000, () => 1),
    2000,
  );
  assert.equal(
    backoffDelay(policy, 3, 10, () => 1),
    800,
  );
});

test("Retry-After: seconds and HTTP dates", () => {
  assert.equal(parseRetryAfter("2"), 2000);
  assert.equal(parseRetryAfter(" 0.5 "), 500);
  assert.equal(parseRetryAfter(undefined), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
  const now = Date.parse("2024-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("Mon, 01 Jan 2024 00:00:03 GMT", now), 3000);
  assert.equal(parseRetryAfter("Mon, 01 Jan 2023 00:00:03 GMT", now), 0);
});

test("base URLs gain /v1 once; bad ones are InputErrors", () => {
  assert.equal(normalizeBaseUrl("http://127.0.0.1:8080"), "http://127.0.0.1:8080/v1");
  assert.equal(normalizeBaseUrl("http://127.0.0.1:8080/"), "http://127.0.0.1:8080/v1");
  assert.equal(normalizeBaseUrl("http://127.0.0.1:8080/v1/"), "http://127.0.0.1:8080/v1");
  assert.equal(normalizeBaseUrl("https://api.openai.com/v1"), "https://api.openai.com/v1");
  assert.equal(normalizeBaseUrl("http://h:1/proxy"), "http://h:1/proxy/v1");
  assert.throws(() => normalizeBaseUrl("127.0.0.1:8080"), InputError);
  assert.throws(() => normalizeBaseUrl("ftp://h/"), InputError);
  assert.throws(() => normalizeBaseUrl("http://h/?x=1"), InputError);
});

test("pool: least-outstanding server, at most `concurrency` per server, FIFO waiters", async () => {
  const pool = new ServerPool(["a", "b"], 2, 1000);
  const got = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()]);
  assert.deepEqual(got.map((s) => s.url).sort(), ["a", "a", "b", "b"]);
  let fifth: string | undefined;
  const waiting = pool.acquire().then((s) => (fifth = s.url));
  await new Promise((r) => setImmediate(r));
  assert.equal(fifth, undefined, "a fifth request must wait while both servers are full");
  pool.release(got.find((s) => s.url === "b")!);
  await waiting;
  assert.equal(fifth, "b");
  pool.close();
  await assert.rejects(pool.acquire(), /disposed/);
});

test("pool: a hard failure takes a server out for the cool-down; soft failures only after three in a row", async () => {
  const pool = new ServerPool(["a", "b"], 4, 200);
  const [a] = pool.servers;
  pool.report(a, "hard-failure");
  for (let i = 0; i < 3; i++) assert.equal((await pool.acquire()).url, "b");
  await new Promise((r) => setTimeout(r, 250));
  assert.equal((await pool.acquire()).url, "a", "back after the cool-down (b has 4 in flight, a none)");
  pool.release(a);
  pool.report(a, "ok");
  pool.report(a, "soft-failure");
  pool.report(a, "soft-failure");
  assert.equal(a.downUntil, 0);
  pool.report(a, "soft-failure");
  assert.ok(a.downUntil > Date.now());
  pool.report(a, "ok");
  assert.equal(a.downUntil, 0);
  pool.close();
});

test("pool: when every server is cooling down, waiters are served when the first comes back", async () => {
  const pool = new ServerPool(["a"], 1, 150);
  pool.report(pool.servers[0], "hard-failure");
  const t0 = Date.now();
  const s = await pool.acquire();
  assert.equal(s.url, "a");
  assert.ok(Date.now() - t0 >= 120, `waited ${Date.now() - t0} ms`);
  const ac = new AbortController();
  const blocked = pool.acquire(ac.signal);
  ac.abort();
  await assert.rejects(blocked, /cancelled/);
  pool.close();
});
