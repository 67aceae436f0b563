// Fault tests of the OpenAI backend: a loopback fault-injecting proxy in front of a real llama-server (500s,
// 429 + Retry-After, slow answers), a server killed mid-batch, a dead base URL, and the concurrency limit.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createOpenAIModel, type OpenAIModelOptions } from "./model.js";
import { BatchError } from "./errors.js";
import {
  createTinyServedModel,
  freePort,
  llamaServerSkipReason,
  startLlamaServer,
  type RunningLlamaServer,
} from "./llama-server.js";
import type { GenerateRequest, GenerateResult } from "../types.js";
import { UnavailableError } from "../../util/errors.js";

type Fault =
  | { kind: "pass" }
  | { kind: "status"; status: number; headers?: Record<string, string> }
  | { kind: "delay"; ms: number };

/** An HTTP proxy on 127.0.0.1 that applies a fault per numbered POST, then forwards to `upstream`. */
class FaultProxy {
  private server: http.Server;
  port = 0;
  /** POSTs seen (1-based numbering for `decide`). */
  posts = 0;
  /** POSTs forwarded upstream that got an answer back to the client. */
  served = 0;
  inFlight = 0;
  maxInFlight = 0;
  /** Arrival time (ms) of each POST. */
  arrivals: number[] = [];
  decide: (n: number) => Fault = () => ({ kind: "pass" });

  constructor(private upstream: string) {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  reset(decide: (n: number) => Fault = () => ({ kind: "pass" })): void {
    this.posts = this.served = this.maxInFlight = 0;
    this.arrivals = [];
    this.decide = decide;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      if (req.method !== "POST") return this.forward(req, body, res, false);
      const n = ++this.posts;
      this.arrivals.push(Date.now());
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      res.on("close", () => this.inFlight--);
      const fault = this.decide(n);
      if (fault.kind === "status") {
        res.writeHead(fault.status, { "content-type": "application/json", ...fault.headers });
        res.end(JSON.stringify({ error: { message: `injected ${fault.status}`, code: fault.status } }));
      } else if (fault.kind === "delay") {
        const timer = setTimeout(() => this.forward(req, body, res, true), fault.ms);
        res.on("close", () => clearTimeout(timer));
      } else this.forward(req, body, res, true);
    });
  }

  private forward(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse, count: boolean): void {
    if (res.destroyed) return;
    const up = http.request(
      `${this.upstream}${req.url}`,
      { method: req.method, headers: { ...req.headers, host: new URL(this.upstream).host } },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
        upRes.on("end", () => {
          if (count && (upRes.statusCode ?? 0) < 300) this.served++;
        });
      },
    );
    up.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    up.end(body);
  }
}

const skip = llamaServerSkipReason();
let dir: string;
let modelPath: string;
let server: RunningLlamaServer;
let proxy: FaultProxy;
/** Greedy texts of `requests(8)` straight from the server, for checking results that went through faults. */
let reference: string[];

const requests = (n: number, maxTokens = 16): GenerateRequest[] =>
  Array.from({ length: n }, (_, i) => ({
    id: `r${i}`,
    prompt: `Request number ${i}:`,
    sampling: { temperature: 0, maxTokens },
  }));

/** Fast retry settings so each fault test ends in seconds. */
const fast = (baseUrls: string[], extra: Partial<OpenAIModelOptions> = {}): OpenAIModelOptions => ({
  model: "tiny",
  baseUrls,
  apiKey: "",
  retryBaseDelayMs: 50,
  retryMaxDelayMs: 400,
  cooldownMs: 200,
  timeoutMs: 20_000,
  ...extra,
});

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "buckle-openai-faults-"));
  modelPath = createTinyServedModel(join(dir, "tiny.gguf")).path;
  server = await startLlamaServer({ modelPath });
  proxy = new FaultProxy(server.url);
  await proxy.start();
  const model = await createOpenAIModel(fast([server.url]));
  reference = (await model.generate(requests(8))).map((r) => r.text);
  await model.dispose();
});

after(async () => {
  await proxy?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("concurrency pool keeps at most N requests in flight per server", { skip }, async () => {
  proxy.reset(() => ({ kind: "delay", ms: 150 }));
  const model = await createOpenAIModel(fast([proxy.url], { concurrency: 2 }));
  try {
    const results = await model.generate(requests(8));
    assert.deepEqual(
      results.map((r) => r.text),
      reference,
    );
    assert.equal(proxy.posts, 8);
    assert.equal(proxy.maxInFlight, 2, `max in flight ${proxy.maxInFlight}`);
  } finally {
    await model.dispose();
  }
});

test(
  "500s for the first 3 requests are retried; the batch completes with correct results",
  { skip },
  async () => {
    proxy.reset((n) => (n <= 3 ? { kind: "status", status: 500 } : { kind: "pass" }));
    const model = await createOpenAIModel(fast([proxy.url], { concurrency: 4 }));
    try {
      const results = await model.generate(requests(4));
      assert.deepEqual(
        results.map((r) => r.text),
        reference.slice(0, 4),
      );
      assert.equal(proxy.posts, 7, "4 requests + 3 retries");
      assert.equal(proxy.served, 4);
    } finally {
      await model.dispose();
    }
  },
);

test("a 500 that persists fails with a clear error after maxRetries + 1 attempts", { skip }, async () => {
  proxy.reset(() => ({ kind: "status", status: 503 }));
  const model = await createOpenAIModel(fast([proxy.url], { maxRetries: 2 }));
  try {
    await assert.rejects(model.generate(requests(1)), (err: unknown) => {
      assert.ok(err instanceof BatchError);
      const e = err.errors[0];
      assert.ok(e instanceof UnavailableError);
      assert.match(e.message, /failed after 3 attempts/);
      assert.match(e.message, /503: injected 503/);
      return true;
    });
    assert.equal(proxy.posts, 3);
  } finally {
    await model.dispose();
  }
});

test("429 with Retry-After: 1 is honoured before the retry", { skip }, async (t) => {
  proxy.reset((n) =>
    n === 1 ? { kind: "status", status: 429, headers: { "retry-after": "1" } } : { kind: "pass" },
  );
  const model = await createOpenAIModel(fast([proxy.url]));
  try {
    const [result] = await model.generate(requests(1));
    assert.equal(result.text, reference[0]);
    assert.equal(proxy.posts, 2);
    const gap = proxy.arrivals[1] - proxy.arrivals[0];
    t.diagnostic(`retry came ${gap} ms after the 429`);
    assert.ok(gap >= 950, `retried after ${gap} ms, Retry-After said 1000`);
  } finally {
    await model.dispose();
  }
});

test(
  "answers slower than the per-request timeout are retried; if all are slow, a clear timeout error",
  { skip },
  async () => {
    proxy.reset((n) => (n <= 2 ? { kind: "delay", ms: 2500 } : { kind: "pass" }));
    const model = await createOpenAIModel(fast([proxy.url], { timeoutMs: 1000 }));
    try {
      const t0 = Date.now();
      const results = await model.generate(requests(3));
      assert.deepEqual(
        results.map((r) => r.text),
        reference.slice(0, 3),
      );
      assert.equal(proxy.posts, 5);
      assert.ok(Date.now() - t0 < 2400, "timed-out attempts were abandoned, not awaited");
    } finally {
      await model.dispose();
    }
    proxy.reset(() => ({ kind: "delay", ms: 1500 }));
    const impatient = await createOpenAIModel(fast([proxy.url], { timeoutMs: 300, maxRetries: 1 }));
    try {
      await assert.rejects(impatient.generate(requests(1)), (err: unknown) => {
        assert.ok(err instanceof BatchError);
        assert.match(
          String(err.errors[0]?.message),
          /failed after 2 attempts.*no complete answer within 300 ms/,
        );
        return true;
      });
    } finally {
      await impatient.dispose();
    }
  },
);

test(
  "server killed mid-batch and restarted: the batch completes; earlier results kept",
  { skip },
  async (t) => {
    const victim = await startLlamaServer({ modelPath, parallel: 2 });
    const model = await createOpenAIModel(
      fast([victim.url], {
        concurrency: 2,
        maxRetries: 8,
        retryBaseDelayMs: 200,
        retryMaxDelayMs: 1000,
        cooldownMs: 300,
      }),
    );
    const early: [number, GenerateResult][] = [];
    let killed: Promise<void> | undefined;
    try {
      const results = await model.generate(requests(8, 48), {
        onResult: (i, r) => {
          if (!killed) early.push([i, r]);
          if (early.length === 2 && !killed)
            killed = victim
              .kill()
              .then(() => new Promise((r) => setTimeout(r, 800)).then(() => victim.restart()));
        },
      });
      await killed;
      const attempts = model.stats()[0].attempts;
      t.diagnostic(`8 requests took ${attempts} attempts across the kill and restart`);
      assert.ok(attempts > 8, "the kill hit requests that then had to be retried");
      assert.equal(early.length, 2);
      for (const [i, r] of early)
        assert.equal(results[i], r, "a result finished before the kill is the one returned");
      assert.deepEqual(
        results.map((r) => r.id),
        requests(8).map((r) => r.id),
      );
      // Greedy, so the same texts as an undisturbed run (maxTokens 48 vs 16: compare the common prefix).
      results.forEach((r, i) =>
        assert.ok(r.text.startsWith(reference[i]) || reference[i].startsWith(r.text)),
      );
    } finally {
      await model.dispose();
      await victim.stop();
    }
  },
);

test(
  "server killed mid-batch and not restarted: BatchError keeps finished results, clear errors",
  { skip },
  async () => {
    const victim = await startLlamaServer({ modelPath, parallel: 2 });
    const model = await createOpenAIModel(
      fast([victim.url], { concurrency: 1, maxRetries: 2, cooldownMs: 100 }),
    );
    let first: GenerateResult | undefined;
    try {
      await assert.rejects(
        model.generate(requests(4, 48), {
          onResult: (i, r) => {
            if (i === 0) {
              first = r;
              void victim.kill();
            }
          },
        }),
        (err: unknown) => {
          assert.ok(err instanceof BatchError);
          assert.equal(err.results[0], first, "the result finished before the kill is kept");
          assert.ok(err.failedIndexes.length >= 1);
          for (const i of err.failedIndexes) {
            assert.equal(err.results[i], undefined);
            assert.ok(err.errors[i] instanceof UnavailableError);
            assert.match(String(err.errors[i]?.message), /failed after 3 attempts/);
            assert.match(String(err.errors[i]?.message), /ECONNREFUSED|ECONNRESET|socket hang up/);
          }
          assert.match(err.message, /requests failed/);
          return true;
        },
      );
    } finally {
      await model.dispose();
      await victim.stop();
    }
  },
);

test("two base URLs, one dead: every request is served by the live one", { skip }, async (t) => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  // With the creation probe, the dead server starts in its cool-down and gets no work.
  proxy.reset();
  const probed = await createOpenAIModel(fast([dead, proxy.url], { cooldownMs: 10_000 }));
  try {
    const results = await probed.generate(requests(6));
    assert.deepEqual(
      results.map((r) => r.text),
      reference.slice(0, 6),
    );
    assert.equal(proxy.served, 6);
    assert.equal(probed.stats()[0].attempts, 0);
  } finally {
    await probed.dispose();
  }
  // Without the probe, requests sent to the dead server fail to connect and are retried on the live one.
  proxy.reset();
  const blind = await createOpenAIModel(fast([dead, proxy.url], { probe: false, cooldownMs: 10_000 }));
  try {
    const results = await blind.generate(requests(6));
    assert.deepEqual(
      results.map((r) => r.text),
      reference.slice(0, 6),
    );
    assert.equal(proxy.served, 6);
    const [deadStats] = blind.stats();
    t.diagnostic(`without the probe the dead server got ${deadStats.attempts} attempts`);
    assert.ok(
      deadStats.attempts >= 1 && deadStats.attempts <= 3,
      `dead server got ${deadStats.attempts} attempts`,
    );
    assert.equal(deadStats.down, true);
  } finally {
    await blind.dispose();
  }
});
