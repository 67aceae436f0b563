// Minimal JSON-over-HTTP client for OpenAI-compatible servers: one keep-alive agent per base URL, a
// per-attempt timeout, caller cancellation, and failures sorted into retryable and final kinds.

import http from "node:http";
import https from "node:https";
import { InputError } from "../../util/errors.js";

/** The most response bytes read from one answer; larger answers are cut off with an error. */
const MAX_BODY_BYTES = 256 * 1024 * 1024;

/** Why one HTTP attempt failed; `retryable` says whether trying again (maybe elsewhere) can help. */
export class HttpAttemptError extends Error {
  constructor(
    message: string,
    readonly kind: "status" | "connection" | "timeout" | "cancelled" | "protocol",
    readonly retryable: boolean,
    readonly status?: number,
    /** Milliseconds the server asked us to wait (Retry-After), when it said. */
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "HttpAttemptError";
  }

  /**
   * A connection failure on a kept-alive socket the server may have closed while it sat idle: a race that says
   * nothing about the server's health (retry at once, no cool-down).
   */
  staleSocket = false;

  withStaleSocket(stale: boolean): this {
    this.staleSocket = stale;
    return this;
  }
}

/**
 * Normalise a base URL: http(s) only, no query or fragment, trailing slashes removed, and "/v1" appended
 * unless the path already ends with it ("http://host:8000" and "http://host:8000/v1" are the same server).
 */
export function normalizeBaseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InputError(`base URL "${raw}" is not a valid URL`, {
      hint: 'pass something like "http://127.0.0.1:8080" or "https://api.openai.com/v1"',
    });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InputError(`base URL "${raw}" must use http or https, not ${url.protocol}`);
  }
  if (url.search || url.hash) throw new InputError(`base URL "${raw}" must not carry a query or fragment`);
  let path = url.pathname.replace(/\/+$/, "");
  if (!/\/v1$/.test(path)) path += "/v1";
  return `${url.protocol}//${url.host}${path}`;
}

/** Parse a Retry-After header (delta-seconds or an HTTP date) into milliseconds from `now`. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

const RETRYABLE_CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ENOTFOUND",
  "UND_ERR_SOCKET",
]);

export interface JsonRequest {
  method: "GET" | "POST";
  /** Full URL. */
  url: string;
  body?: unknown;
  headers?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** One HTTP client per base URL; owns a keep-alive agent that dispose() closes. */
export class JsonClient {
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;

  constructor(baseUrl: string, maxSockets: number) {
    const secure = baseUrl.startsWith("https:");
    this.transport = secure ? https : http;
    this.agent = secure
      ? new https.Agent({ keepAlive: true, maxSockets })
      : new http.Agent({ keepAlive: true, maxSockets });
  }

  /** One attempt: resolves with the parsed JSON of a 2xx answer, otherwise throws HttpAttemptError. */
  request(req: JsonRequest): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      if (req.signal?.aborted) {
        reject(new HttpAttemptError(`${req.method} ${req.url} cancelled`, "cancelled", false));
        return;
      }
      const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
      let settled = false;
      const finish = (err: HttpAttemptError | undefined, value?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.signal?.removeEventListener("abort", onAbort);
        if (err) {
          httpReq.destroy();
          reject(err);
        } else resolve(value);
      };
      const onAbort = (): void =>
        finish(new HttpAttemptError(`${req.method} ${req.url} cancelled`, "cancelled", false));
      const headers: Record<string, string> = { accept: "application/json", ...req.headers };
      if (payload) {
        headers["content-type"] = "application/json";
        headers["content-length"] = String(payload.length);
      }
      const httpReq = this.transport.request(req.url, { method: req.method, headers, agent: this.agent });
      const timer = setTimeout(
        () =>
          finish(
            new HttpAttemptError(
              `${req.method} ${req.url} got no complete answer within ${req.timeoutMs} ms`,
              "timeout",
              true,
            ),
          ),
        req.timeoutMs,
      );
      req.signal?.addEventListener("abort", onAbort, { once: true });
      httpReq.on("error", (err: NodeJS.ErrnoException) => {
        const code = err.code ?? "";
        finish(
          new HttpAttemptError(
            `${req.method} ${req.url} failed: ${code ? `${code} ` : ""}${err.message}`,
            "connection",
            RETRYABLE_CONNECTION_CODES.has(code) || /socket hang up|other side closed/i.test(err.message),
            undefined,
            undefined,
            { cause: err },
          ).withStaleSocket(httpReq.reusedSocket),
        );
      });
      httpReq.on("response", (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            finish(
              new HttpAttemptError(
                `${req.method} ${req.url}: answer larger than ${MAX_BODY_BYTES} bytes`,
                "protocol",
                false,
              ),
            );
            return;
          }
          chunks.push(chunk);
        });
        res.on("error", (err) =>
          finish(
            new HttpAttemptError(
              `${req.method} ${req.url}: answer cut off: ${err.message}`,
              "connection",
              true,
              undefined,
              undefined,
              { cause: err },
            ),
          ),
        );
        res.on("aborted", () =>
          finish(new HttpAttemptError(`${req.method} ${req.url}: answer cut off`, "connection", true)),
        );
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            const header = res.headers["retry-after"];
            const retryAfterMs = parseRetryAfter(Array.isArray(header) ? header[0] : header);
            const retryable = status === 408 || status === 409 || status === 429 || status >= 500;
            finish(
              new HttpAttemptError(
                `${req.method} ${req.url} answered ${status}: ${summarizeErrorBody(text)}`,
                "status",
                retryable,
                status,
                retryAfterMs,
              ),
            );
            return;
          }
          try {
            finish(undefined, text === "" ? {} : (JSON.parse(text) as unknown));
          } catch (err) {
            finish(
              new HttpAttemptError(
                `${req.method} ${req.url} answered ${status} with text that is not JSON: ${text.slice(0, 200)}`,
                "protocol",
                false,
                status,
                undefined,
                { cause: err },
              ),
            );
          }
        });
      });
      if (payload) httpReq.end(payload);
      else httpReq.end();
    });
  }

  /** Close idle keep-alive sockets and refuse new ones. */
  dispose(): void {
    this.agent.destroy();
  }
}

/** The error message an OpenAI-style error body carries, else the start of the body. */
function summarizeErrorBody(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    if (typeof parsed.error === "string") return parsed.error;
    if (parsed.error && typeof parsed.error.message === "string") return parsed.error.message;
    if (typeof parsed.message === "string") return parsed.message;
  } catch {
    // not JSON: fall through
  }
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length > 300 ? `${oneLine.slice(0, 300)}...` : oneLine || "(empty body)";
}
