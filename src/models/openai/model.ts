// The OpenAI-compatible HTTP backend: a LanguageModel over vLLM, llama-server, Ollama or OpenAI with a concurrency
// pool, retries with backoff, load balancing over base URLs, and response log-probs where the server has them.

import { setMaxListeners } from "node:events";
import type { ChatMessage } from "../../formats/chat/index.js";
import { BuckleError, InputError, UnavailableError } from "../../util/errors.js";
import type {
  BatchOptions,
  FinishReason,
  GenerateRequest,
  GenerateResult,
  LanguageModel,
  LogprobsOptions,
  LogprobsRequest,
  LogprobsResult,
  ModelInfo,
  Sampling,
} from "../types.js";
import { BatchError } from "./errors.js";
import { HttpAttemptError, JsonClient, normalizeBaseUrl } from "./http.js";
import {
  commonPrefixLength,
  echoResponseTokens,
  parseEchoLogprobs,
  parseVllmPromptLogprobs,
  perplexityOf,
  tokenIdFromText,
} from "./logprobs.js";
import { backoffDelay, PoolClosedError, ServerPool, type RetryPolicy, type ServerState } from "./pool.js";

export type LogprobsMode = "auto" | "vllm-prompt-logprobs" | "completions-echo" | "none";
/** What answered GET /v1/models (from `owned_by` and the host); "unknown" when the probe was skipped. */
export type ServerKind = "vllm" | "llama.cpp" | "ollama" | "openai" | "unknown";

export interface OpenAIModelOptions {
  /** The model name the server knows (vLLM: the served name; llama-server: anything; OpenAI: e.g. gpt-4o-mini). */
  model: string;
  /** One or more servers serving the same model: "http://host:port" or ".../v1". */
  baseUrls: string[];
  /** Bearer token; default $OPENAI_API_KEY, else $BUCKLE_OPENAI_API_KEY; none sent when neither is set. */
  apiKey?: string;
  /** Requests in flight per base URL (default 8). */
  concurrency?: number;
  /** Limit of one HTTP attempt, in ms (default 300000). */
  timeoutMs?: number;
  /** Retries after the first attempt on 429, 5xx, connection failures and timeouts (default 4). */
  maxRetries?: number;
  /** First backoff delay in ms, doubled per retry with jitter (default 500). */
  retryBaseDelayMs?: number;
  /** Cap of one backoff delay in ms (default 30000). */
  retryMaxDelayMs?: number;
  /** A Retry-After longer than this (ms) fails the request instead of waiting (default 120000). */
  maxRetryAfterMs?: number;
  /** How long a failing server stays out of rotation, in ms (default 5000). */
  cooldownMs?: number;
  /** Chats are rendered by the server's own template; "server" is the only choice. */
  chatTemplate?: "server";
  /** How logprobs() scores responses (default "auto": detected once, on first use). */
  logprobsMode?: LogprobsMode;
  /** Context size reported by info(); default: what the server says (vLLM max_model_len, llama-server n_ctx). */
  contextSize?: number;
  /**
   * Send top_k, min_p, repeat_penalty/repetition_penalty when a request sets them (default true, false for
   * api.openai.com, which rejects unknown fields; a request setting them then fails with an InputError).
   */
  samplingExtras?: boolean;
  /** Fields merged into every generation body (e.g. { "cache_prompt": true }). */
  extraBody?: Record<string, unknown>;
  /** Ask GET /v1/models at creation to learn the server kind and context size (default true). */
  probe?: boolean;
}

interface Resolved {
  model: string;
  urls: string[];
  apiKey: string | undefined;
  concurrency: number;
  timeoutMs: number;
  retry: RetryPolicy;
  cooldownMs: number;
  logprobsMode: LogprobsMode;
  samplingExtras: boolean;
  extraBody: Record<string, unknown>;
}

function positive(value: number | undefined, fallback: number, name: string, integer: boolean): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0 || (integer && !Number.isInteger(value)))
    throw new InputError(
      `createOpenAIModel: ${name} must be a ${integer ? "whole " : ""}number >= 0, got ${value}`,
    );
  return value;
}

function resolveOptions(opts: OpenAIModelOptions): Resolved {
  if (typeof opts.model !== "string" || opts.model === "")
    throw new InputError("createOpenAIModel: `model` must be a non-empty model name", {
      hint: "pass the name the server serves (see GET /v1/models)",
    });
  if (!Array.isArray(opts.baseUrls) || opts.baseUrls.length === 0)
    throw new InputError("createOpenAIModel: `baseUrls` must list at least one server URL", {
      hint: 'e.g. baseUrls: ["http://127.0.0.1:8080"]',
    });
  const urls = opts.baseUrls.map(normalizeBaseUrl);
  if (new Set(urls).size !== urls.length)
    throw new InputError(`createOpenAIModel: baseUrls lists the same server twice: ${urls.join(", ")}`);
  const concurrency = positive(opts.concurrency, 8, "concurrency", true);
  if (concurrency < 1) throw new InputError("createOpenAIModel: concurrency must be at least 1");
  if (opts.chatTemplate !== undefined && opts.chatTemplate !== "server")
    throw new InputError(`createOpenAIModel: chatTemplate "${String(opts.chatTemplate)}" is not supported`, {
      hint: 'the server renders chats with its own template; use chatTemplate: "server" or leave it out',
    });
  const modes: LogprobsMode[] = ["auto", "vllm-prompt-logprobs", "completions-echo", "none"];
  const logprobsMode = opts.logprobsMode ?? "auto";
  if (!modes.includes(logprobsMode))
    throw new InputError(
      `createOpenAIModel: logprobsMode "${String(logprobsMode)}" is not one of ${modes.join(", ")}`,
    );
  const openaiHost = urls.some((u) => new URL(u).hostname.endsWith("api.openai.com"));
  const timeoutMs = positive(opts.timeoutMs, 300_000, "timeoutMs", false);
  if (timeoutMs < 1) throw new InputError("createOpenAIModel: timeoutMs must be at least 1");
  return {
    model: opts.model,
    urls,
    apiKey: opts.apiKey ?? process.env.OPENAI_API_KEY ?? process.env.BUCKLE_OPENAI_API_KEY,
    concurrency,
    timeoutMs,
    retry: {
      maxRetries: positive(opts.maxRetries, 4, "maxRetries", true),
      baseDelayMs: positive(opts.retryBaseDelayMs, 500, "retryBaseDelayMs", false),
      maxDelayMs: positive(opts.retryMaxDelayMs, 30_000, "retryMaxDelayMs", false),
      maxRetryAfterMs: positive(opts.maxRetryAfterMs, 120_000, "maxRetryAfterMs", false),
    },
    cooldownMs: positive(opts.cooldownMs, 5000, "cooldownMs", false),
    logprobsMode,
    samplingExtras: opts.samplingExtras ?? !openaiHost,
    extraBody: opts.extraBody ?? {},
  };
}

/** The capability error logprobs() throws where the server cannot score given text. */
export function noPromptLogprobsError(detail: string): UnavailableError {
  return new UnavailableError(
    `this server does not return prompt log-probs (${detail}); use the llamacpp or native backend for perplexity, or a vLLM server`,
    {
      hint: 'response log-probs need vLLM\'s prompt_logprobs or completions echo+logprobs; llama-server and OpenAI offer neither (set logprobsMode: "none" to skip detection)',
    },
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new PoolClosedError("cancelled"));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new PoolClosedError("cancelled"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A cancelled attempt or wait (the caller's signal fired, or the model was disposed). */
function isCancellation(err: unknown): boolean {
  return err instanceof PoolClosedError || (err instanceof HttpAttemptError && err.kind === "cancelled");
}

/** Retry statistics since creation, per server (for diagnostics and tests). */
export interface ServerStats {
  url: string;
  attempts: number;
  outstanding: number;
  down: boolean;
}

type LogprobsRoute = "vllm-prompt-logprobs" | "completions-echo" | "none";

export class OpenAIModel implements LanguageModel {
  private readonly pool: ServerPool;
  private readonly clients = new Map<string, JsonClient>();
  private readonly disposeController = new AbortController();
  private route: Promise<{ route: LogprobsRoute; detail: string }> | undefined;
  private knownRoute: LogprobsRoute | undefined;

  constructor(
    private readonly opts: Resolved,
    readonly serverKind: ServerKind,
    private readonly contextSize: number,
    /** Base URLs that did not answer at creation: they start in their cool-down. */
    initiallyDown: readonly string[] = [],
  ) {
    setMaxListeners(0, this.disposeController.signal);
    this.pool = new ServerPool(opts.urls, opts.concurrency, opts.cooldownMs);
    for (const s of this.pool.servers) if (initiallyDown.includes(s.url)) this.pool.report(s, "hard-failure");
    for (const url of opts.urls) this.clients.set(url, new JsonClient(url, opts.concurrency + 2));
    if (opts.logprobsMode !== "auto") this.knownRoute = opts.logprobsMode;
    else if (serverKind === "openai" || serverKind === "llama.cpp" || serverKind === "ollama")
      this.knownRoute = "none";
  }

  info(): ModelInfo {
    return {
      id: `openai:${this.opts.model}@${this.opts.urls.join(",")}`,
      backend: "openai",
      chatTemplate: "server",
      contextSize: this.contextSize,
      capabilities: {
        // Unknown until detected (auto mode on an unknown server): reported false until a probe says yes.
        logprobs: this.knownRoute !== undefined && this.knownRoute !== "none",
        seeds: true,
        training: false,
      },
    };
  }

  /** Per-server attempt counts and state. */
  stats(): ServerStats[] {
    const now = Date.now();
    return this.pool.servers.map((s) => ({
      url: s.url,
      attempts: s.attempts,
      outstanding: s.outstanding,
      down: s.downUntil > now,
    }));
  }

  async dispose(): Promise<void> {
    this.disposeController.abort();
    this.pool.close();
    for (const c of this.clients.values()) c.dispose();
  }

  // ---------------------------------------------------------------- generation

  async generate(
    requests: readonly GenerateRequest[],
    options: BatchOptions = {},
  ): Promise<GenerateResult[]> {
    const bodies = requests.map((r, i) => this.generationBody(r, i));
    return this.runBatch(
      "generation",
      bodies.map(({ path, body }, i) => async (signal) => {
        const answer = await this.call(path, body, signal);
        return parseGeneration(answer, path, requests[i]);
      }),
      options.signal,
      options.onResult,
      (i) => ({ id: requests[i].id, text: "", finishReason: "cancelled" }),
    );
  }

  private generationBody(req: GenerateRequest, i: number): { path: string; body: Record<string, unknown> } {
    const where = `generate request ${i}${req.id !== undefined ? ` (id ${req.id})` : ""}`;
    if ((req.messages === undefined) === (req.prompt === undefined))
      throw new InputError(`${where}: give exactly one of messages or prompt`);
    const s: Sampling | undefined = req.sampling;
    if (!s || !Number.isInteger(s.maxTokens) || s.maxTokens < 1)
      throw new InputError(`${where}: sampling.maxTokens must be a whole number >= 1, got ${s?.maxTokens}`);
    if (!(s.temperature >= 0)) throw new InputError(`${where}: sampling.temperature must be >= 0`);
    const body: Record<string, unknown> = {
      ...this.opts.extraBody,
      temperature: s.temperature,
      max_tokens: s.maxTokens,
      n: 1,
      stream: false,
    };
    if (s.topP !== undefined) body.top_p = s.topP;
    if (s.seed !== undefined) body.seed = s.seed;
    if (s.stop !== undefined && s.stop.length > 0) body.stop = s.stop;
    const extras: [keyof Sampling, string[]][] = [
      ["topK", ["top_k"]],
      ["minP", ["min_p"]],
      // llama-server reads repeat_penalty, vLLM repetition_penalty; each ignores the other's name.
      ["repeatPenalty", ["repeat_penalty", "repetition_penalty"]],
    ];
    for (const [field, names] of extras) {
      const value = s[field];
      if (value === undefined) continue;
      if (!this.opts.samplingExtras)
        throw new InputError(`${where}: sampling.${field} cannot be sent to ${this.opts.urls.join(", ")}`, {
          hint: "this server rejects fields outside the OpenAI API; drop it, or set samplingExtras: true if it accepts them",
        });
      for (const name of names) body[name] = value;
    }
    if (req.messages !== undefined) {
      body.messages = checkMessages(req.messages, where);
      return { path: "/chat/completions", body };
    }
    if (typeof req.prompt !== "string") throw new InputError(`${where}: prompt must be a string`);
    body.prompt = req.prompt;
    return { path: "/completions", body };
  }

  // ---------------------------------------------------------------- log-probs

  async logprobs(
    requests: readonly LogprobsRequest[],
    options: LogprobsOptions = {},
  ): Promise<LogprobsResult[]> {
    requests.forEach((r, i) => {
      if ((r.messages === undefined) === (r.prompt === undefined))
        throw new InputError(`logprobs request ${i}: give exactly one of messages or prompt`);
      if (typeof r.response !== "string")
        throw new InputError(`logprobs request ${i}: response must be a string`);
      if (r.messages !== undefined) checkMessages(r.messages, `logprobs request ${i}`);
    });
    if (requests.length === 0) return [];
    const { route, detail } = await this.detectRoute(this.batchSignal(options.signal));
    if (route === "none") throw noPromptLogprobsError(detail);
    const results = await this.runBatch(
      "logprobs",
      requests.map(
        (r) => (signal) =>
          route === "vllm-prompt-logprobs" ? this.scoreVllm(r, signal) : this.scoreEcho(r, signal),
      ),
      options.signal,
      options.onResult,
      undefined,
    );
    return results;
  }

  /** Find how this server scores given text; asked once per model, shared by concurrent callers. */
  private detectRoute(signal?: AbortSignal): Promise<{ route: LogprobsRoute; detail: string }> {
    if (this.knownRoute !== undefined) {
      const detail =
        this.knownRoute === "none"
          ? this.opts.logprobsMode === "none"
            ? 'logprobsMode is "none"'
            : `${this.serverKind} server at ${this.opts.urls.join(", ")}`
          : `logprobsMode ${this.knownRoute}`;
      return Promise.resolve({ route: this.knownRoute, detail });
    }
    this.route ??= this.probeRoute(signal).then(
      (r) => {
        this.knownRoute = r.route;
        return r;
      },
      (err: unknown) => {
        this.route = undefined; // a failed probe (server down, cancelled) is asked again next time
        throw err;
      },
    );
    return this.route;
  }

  private async probeRoute(signal?: AbortSignal): Promise<{ route: LogprobsRoute; detail: string }> {
    const where = this.opts.urls.join(", ");
    // vLLM: prompt_logprobs on a token-id prompt, plus /tokenize.
    try {
      const ids = await this.tokenize({ prompt: "Hello world" }, signal, true);
      if (ids.length >= 2) {
        const answer = await this.call(
          "/completions",
          { prompt: ids, max_tokens: 1, temperature: 0, prompt_logprobs: 1 },
          signal,
          false,
          true,
        );
        parseVllmPromptLogprobs(answer, ids, 1);
        return { route: "vllm-prompt-logprobs", detail: `prompt_logprobs at ${where}` };
      }
    } catch (err) {
      if (!isCapabilityRefusal(err)) throw err;
    }
    // Legacy completions echo + logprobs.
    try {
      const text = "Hello world";
      const answer = await this.call(
        "/completions",
        {
          prompt: text,
          max_tokens: 1,
          temperature: 0,
          echo: true,
          logprobs: 0,
          return_tokens_as_token_ids: true,
        },
        signal,
        false,
        true,
      );
      const tokens = parseEchoLogprobs(answer, text);
      if (tokens.every((t) => tokenIdFromText(t.text) !== undefined))
        return { route: "completions-echo", detail: `echo+logprobs at ${where}` };
      return { route: "none", detail: `echo at ${where} gives token texts but no token ids` };
    } catch (err) {
      if (!isCapabilityRefusal(err)) throw err;
    }
    return {
      route: "none",
      detail: `${where} ignored or refused both prompt_logprobs and echo+logprobs`,
    };
  }

  /** vLLM's /tokenize (at the server root, not under /v1): prompt text or a chat. */
  private async tokenize(
    input: { prompt: string } | { messages: ChatMessage[]; continueFinal: boolean },
    signal?: AbortSignal,
    probe = false,
  ): Promise<number[]> {
    const body =
      "prompt" in input
        ? { prompt: input.prompt, add_special_tokens: true }
        : {
            messages: input.messages,
            add_generation_prompt: !input.continueFinal,
            continue_final_message: input.continueFinal,
            add_special_tokens: false,
          };
    const answer = await this.call("/tokenize", body, signal, true, probe);
    const tokens = isRecord(answer) ? answer.tokens : undefined;
    if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t)))
      throw new UnavailableError(
        `/tokenize answered without a token list: ${JSON.stringify(answer).slice(0, 200)}`,
      );
    return tokens as number[];
  }

  private async scoreVllm(req: LogprobsRequest, signal: AbortSignal): Promise<LogprobsResult> {
    let prefix: number[], full: number[];
    if (req.messages !== undefined) {
      [prefix, full] = await Promise.all([
        this.tokenize({ messages: req.messages, continueFinal: false }, signal),
        this.tokenize(
          { messages: [...req.messages, { role: "assistant", content: req.response }], continueFinal: true },
          signal,
        ),
      ]);
    } else {
      const prompt = req.prompt as string;
      [prefix, full] = await Promise.all([
        this.tokenize({ prompt }, signal),
        this.tokenize({ prompt: prompt + req.response }, signal),
      ]);
    }
    // Tokens from the first difference on are the response's (a token merging across the boundary counts).
    const from = commonPrefixLength(prefix, full);
    if (from === full.length) return { id: req.id, tokens: [], logprobs: [], perplexity: Infinity };
    const answer = await this.call(
      "/completions",
      { prompt: full, max_tokens: 1, temperature: 0, prompt_logprobs: 1 },
      signal,
    );
    const logprobs = parseVllmPromptLogprobs(answer, full, from);
    return { id: req.id, tokens: full.slice(from), logprobs, perplexity: perplexityOf(logprobs) };
  }

  private async scoreEcho(req: LogprobsRequest, signal: AbortSignal): Promise<LogprobsResult> {
    if (req.messages !== undefined)
      throw new UnavailableError("completions echo scoring takes raw prompts only, not chats", {
        hint: "the server renders chats itself and echo cannot show where the response starts; pass prompt, or use a vLLM server",
      });
    const prompt = req.prompt as string;
    const full = prompt + req.response;
    if (req.response === "") return { id: req.id, tokens: [], logprobs: [], perplexity: Infinity };
    const answer = await this.call(
      "/completions",
      {
        prompt: full,
        max_tokens: 1,
        temperature: 0,
        echo: true,
        logprobs: 0,
        return_tokens_as_token_ids: true,
      },
      signal,
    );
    const span = echoResponseTokens(parseEchoLogprobs(answer, full), prompt.length, full.length);
    const tokens: number[] = [];
    const logprobs: number[] = [];
    for (const t of span) {
      const id = tokenIdFromText(t.text);
      if (id === undefined || t.logprob === null)
        throw new UnavailableError(`echo answer lacks the id or log-prob of response token "${t.text}"`);
      tokens.push(id);
      logprobs.push(Math.min(0, t.logprob));
    }
    return { id: req.id, tokens, logprobs, perplexity: perplexityOf(logprobs) };
  }

  // ---------------------------------------------------------------- batches, retries

  /** The caller's signal joined with dispose(); every waiting request listens to it. */
  private batchSignal(callerSignal: AbortSignal | undefined): AbortSignal {
    const signal = callerSignal
      ? AbortSignal.any([callerSignal, this.disposeController.signal])
      : this.disposeController.signal;
    setMaxListeners(0, signal);
    return signal;
  }

  /**
   * Run one job per request over the pool. Results come back in request order; a request that fails for good
   * does not stop the others, and the batch then throws a BatchError holding every finished result.
   */
  private async runBatch<T>(
    what: string,
    jobs: ((signal: AbortSignal) => Promise<T>)[],
    callerSignal: AbortSignal | undefined,
    onResult: ((index: number, result: T) => void) | undefined,
    cancelled: ((index: number) => T) | undefined,
  ): Promise<T[]> {
    const signal = this.batchSignal(callerSignal);
    const results: (T | undefined)[] = new Array<T | undefined>(jobs.length).fill(undefined);
    const errors: (Error | undefined)[] = new Array<Error | undefined>(jobs.length).fill(undefined);
    await Promise.all(
      jobs.map(async (job, i) => {
        try {
          const result = await job(signal);
          results[i] = result;
          onResult?.(i, result);
        } catch (err) {
          if (isCancellation(err) && callerSignal?.aborted && cancelled) {
            results[i] = cancelled(i);
          } else if (isCancellation(err)) {
            errors[i] = new BuckleError(
              callerSignal?.aborted
                ? `${what} request ${i} was cancelled`
                : `the model was disposed during ${what} request ${i}`,
              { cause: err },
            );
          } else {
            errors[i] = err instanceof Error ? err : new Error(String(err));
          }
        }
      }),
    );
    if (errors.some((e) => e !== undefined)) throw new BatchError<T>(results, errors, what);
    return results as T[];
  }

  /**
   * POST one body, retrying on 429 (after Retry-After), 5xx, connection failures and timeouts with exponential
   * backoff and jitter; each attempt goes to the least-busy live server. `root`: path is at the server root.
   */
  private async call(
    path: string,
    body: Record<string, unknown>,
    signal?: AbortSignal,
    root = false,
    probe = false,
  ): Promise<unknown> {
    const { retry } = this.opts;
    const headers: Record<string, string> = {};
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    const payload = { model: this.opts.model, ...body };
    let last: HttpAttemptError | undefined;
    for (let attempt = 0; attempt <= retry.maxRetries; attempt++) {
      const server: ServerState = await this.pool.acquire(signal);
      const url = (root ? server.url.replace(/\/v1$/, "") : server.url) + path;
      let err: HttpAttemptError;
      try {
        const answer = await (this.clients.get(server.url) as JsonClient).request({
          method: "POST",
          url,
          body: payload,
          headers,
          timeoutMs: this.opts.timeoutMs,
          signal,
        });
        this.pool.report(server, "ok");
        this.pool.release(server);
        return answer;
      } catch (e) {
        this.pool.release(server);
        if (!(e instanceof HttpAttemptError)) throw e;
        err = e;
      }
      if (err.kind === "cancelled") throw err;
      // A probe's odd fields draw errors from servers that lack the feature: any answer is final there.
      if (!err.retryable || (probe && err.kind === "status")) throw finalError(err, this.opts.model);
      last = err;
      if (err.staleSocket && attempt < retry.maxRetries) continue; // an idle keep-alive socket closed under us
      const rateLimited = err.status === 429 || err.status === 503;
      this.pool.report(
        server,
        err.kind === "connection" ? "hard-failure" : "soft-failure",
        rateLimited ? err.retryAfterMs : undefined,
      );
      if (attempt === retry.maxRetries) break;
      if (err.retryAfterMs !== undefined && err.retryAfterMs > retry.maxRetryAfterMs)
        throw new UnavailableError(
          `${url} asked to retry after ${Math.round(err.retryAfterMs / 1000)} s, more than maxRetryAfterMs (${retry.maxRetryAfterMs} ms)`,
          { hint: "the server is rate limiting; try later or raise maxRetryAfterMs", cause: err },
        );
      await sleep(backoffDelay(retry, attempt, rateLimited ? err.retryAfterMs : undefined), signal);
    }
    throw new UnavailableError(
      `${path} failed after ${retry.maxRetries + 1} attempts over ${this.opts.urls.join(", ")}: ${last?.message}`,
      {
        hint: "check that the server is up and not overloaded; raise maxRetries or timeoutMs, or add base URLs",
        cause: last,
      },
    );
  }
}

/** A non-retryable HTTP failure as a user-facing error. */
function finalError(err: HttpAttemptError, model: string): BuckleError {
  if (err.status === 401 || err.status === 403)
    return new UnavailableError(err.message, {
      hint: "set OPENAI_API_KEY or BUCKLE_OPENAI_API_KEY (or pass apiKey) to a key this server accepts",
      cause: err,
    });
  if (err.status === 404)
    return new InputError(err.message, {
      hint: `check the model name ("${model}") against GET /v1/models and that the base URL points at the API root`,
      cause: err,
    });
  if (err.status !== undefined && err.status >= 400 && err.status < 500)
    return new InputError(err.message, {
      hint: "the server rejected the request; servers differ in the fields they accept (top_k, min_p, stop, seed)",
      cause: err,
    });
  return new UnavailableError(err.message, { cause: err });
}

/** A 4xx refusal or a shape check failure during capability probing means "not supported here". */
function isCapabilityRefusal(err: unknown): boolean {
  if (err instanceof InputError) return true;
  if (err instanceof UnavailableError && !(err.cause instanceof HttpAttemptError)) return true;
  // 5xx that stays after retries on a probe body (some servers answer 500 to fields they do not know).
  return (
    err instanceof UnavailableError && err.cause instanceof HttpAttemptError && err.cause.kind === "status"
  );
}

function checkMessages(messages: readonly ChatMessage[], where: string): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0)
    throw new InputError(`${where}: messages must be a non-empty list`);
  return messages.map((m, j) => {
    if (
      !isRecord(m) ||
      !["system", "user", "assistant"].includes(String(m.role)) ||
      typeof m.content !== "string"
    )
      throw new InputError(`${where}: message ${j} needs role system/user/assistant and string content`);
    return { role: m.role as ChatMessage["role"], content: m.content };
  });
}

/**
 * A GenerateResult out of a chat or completions answer. finish_reason "length" -> "length"; "stop" -> "stop"
 * when a stop string ended it (vLLM's stop_reason is a string, or the request had stop strings and the server
 * does not say), else "eos".
 */
export function parseGeneration(answer: unknown, path: string, req: GenerateRequest): GenerateResult {
  const choice = isRecord(answer) && Array.isArray(answer.choices) ? answer.choices[0] : undefined;
  if (!isRecord(choice))
    throw new UnavailableError(`${path} answer has no choices[0]: ${JSON.stringify(answer).slice(0, 300)}`);
  let text: unknown;
  if (path === "/chat/completions") {
    const message = choice.message;
    text = isRecord(message) ? (message.content ?? "") : undefined;
  } else text = choice.text;
  if (typeof text !== "string")
    throw new UnavailableError(
      `${path} answer has no text in choices[0]: ${JSON.stringify(choice).slice(0, 300)}`,
    );
  const reason = choice.finish_reason;
  let finishReason: FinishReason;
  if (reason === "length") finishReason = "length";
  else if ("stop_reason" in choice)
    finishReason = typeof choice.stop_reason === "string" ? "stop" : "eos"; // vLLM: null = EOS, int = stop token
  else finishReason = (req.sampling.stop?.length ?? 0) > 0 && reason === "stop" ? "stop" : "eos";
  const usage = isRecord(answer) ? answer.usage : undefined;
  const promptTokens =
    isRecord(usage) && typeof usage.prompt_tokens === "number" ? usage.prompt_tokens : undefined;
  const result: GenerateResult = { text, finishReason };
  if (req.id !== undefined) result.id = req.id;
  if (promptTokens !== undefined) result.promptTokens = promptTokens;
  return result;
}

/**
 * Create an OpenAI-compatible model. Asks GET /v1/models once (unless probe: false) to learn the server kind
 * and context size; servers that do not answer then are taken out for a cool-down, and if none answers this
 * throws an UnavailableError.
 */
export async function createOpenAIModel(options: OpenAIModelOptions): Promise<OpenAIModel> {
  const opts = resolveOptions(options);
  let kind: ServerKind = "unknown";
  let contextSize = options.contextSize ?? 0;
  if (opts.urls.some((u) => new URL(u).hostname.endsWith("api.openai.com"))) kind = "openai";
  if (options.probe === false) return new OpenAIModel(opts, kind, contextSize);

  const failures: string[] = [];
  const dead: string[] = [];
  let answered = false;
  const headers: Record<string, string> = {};
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  for (const url of opts.urls) {
    const client = new JsonClient(url, 1);
    try {
      const answer = await client.request({
        method: "GET",
        url: `${url}/models`,
        headers,
        timeoutMs: Math.min(opts.timeoutMs, 10_000),
      });
      answered = true;
      const data = isRecord(answer) && Array.isArray(answer.data) ? answer.data.filter(isRecord) : [];
      const entry = data.find((d) => d.id === opts.model) ?? (data.length === 1 ? data[0] : undefined);
      const owner = entry?.owned_by ?? data[0]?.owned_by;
      if (kind === "unknown") {
        if (owner === "vllm") kind = "vllm";
        else if (owner === "llamacpp") kind = "llama.cpp";
        else if (owner === "library") kind = "ollama";
      }
      if (kind === "vllm" && !data.some((d) => d.id === opts.model))
        throw new InputError(`model "${opts.model}" is not served at ${url}`, {
          hint: `served: ${data.map((d) => String(d.id)).join(", ")}`,
        });
      if (options.contextSize === undefined && contextSize === 0) {
        if (typeof entry?.max_model_len === "number") contextSize = entry.max_model_len;
        else if (kind === "llama.cpp") contextSize = await llamaServerContext(client, url, headers, entry);
      }
    } catch (err) {
      if (err instanceof InputError) throw err;
      failures.push(`${url}: ${(err as Error).message}`);
      dead.push(url);
    } finally {
      client.dispose();
    }
  }
  if (!answered)
    throw new UnavailableError(`no server answered GET /v1/models: ${failures.join("; ")}`, {
      hint: "start the server (see docs/OPENAI-BACKEND.md), check baseUrls, or pass probe: false",
    });
  // Servers that did not answer start in their cool-down, so the first batch goes to the live ones.
  return new OpenAIModel(opts, kind, contextSize, dead);
}

/** llama-server's context size: GET /props default_generation_settings.n_ctx, else the model's training context. */
async function llamaServerContext(
  client: JsonClient,
  url: string,
  headers: Record<string, string>,
  entry: Record<string, unknown> | undefined,
): Promise<number> {
  try {
    const props = await client.request({
      method: "GET",
      url: `${url.replace(/\/v1$/, "")}/props`,
      headers,
      timeoutMs: 5000,
    });
    const settings = isRecord(props) ? props.default_generation_settings : undefined;
    const n = isRecord(settings) ? settings.n_ctx : undefined;
    if (typeof n === "number") return n;
  } catch {
    // fall back to the training context below
  }
  const meta = entry && isRecord(entry.meta) ? entry.meta : undefined;
  return typeof meta?.n_ctx_train === "number" ? meta.n_ctx_train : 0;
}
