// A run's SQLite store (WAL): a content-addressed cache of model calls and namespaced JSON records.
// Every write commits before it returns, so a process killed at any moment loses at most the call in flight.

import { mkdirSync } from "node:fs";
import { createHash } from "node:crypto";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { BuckleError } from "../util/errors.js";

/** Canonical JSON: object keys sorted, undefined members dropped; equal values give equal strings. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : sortKeys(v)));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/** sha256 (hex) of the canonical JSON of `parts`: the key of a content-addressed cache entry. */
export function contentKey(...parts: unknown[]): string {
  return createHash("sha256").update(canonicalJson(parts)).digest("hex");
}

export interface StoredRecord<T> {
  id: string;
  value: T;
}

/**
 * One SQLite file. Two tables: `cache` (key -> kind, JSON value; written once, never changed) and `records`
 * (namespace, id -> JSON value; upserted). Synchronous calls; safe to share between concurrent async tasks of
 * one process. A second process may read while one writes (WAL).
 */
export class Store {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly stmts: {
    cacheGet: Database.Statement<[string], { value: string }>;
    cachePut: Database.Statement<[string, string, string, number]>;
    get: Database.Statement<[string, string], { value: string }>;
    put: Database.Statement<[string, string, string, number]>;
    del: Database.Statement<[string, string]>;
    list: Database.Statement<[string], { id: string; value: string }>;
    listPrefix: Database.Statement<[string, string, string], { id: string; value: string }>;
    count: Database.Statement<[string], { n: number }>;
    cacheCount: Database.Statement<[string], { n: number }>;
  };

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.db = db;
    db.exec(`
      CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL,
                                        created REAL NOT NULL);
      CREATE TABLE IF NOT EXISTS records (ns TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL,
                                          updated REAL NOT NULL, PRIMARY KEY (ns, id));
    `);
    this.stmts = {
      cacheGet: db.prepare("SELECT value FROM cache WHERE key = ?"),
      cachePut: db.prepare("INSERT OR IGNORE INTO cache (key, kind, value, created) VALUES (?, ?, ?, ?)"),
      get: db.prepare("SELECT value FROM records WHERE ns = ? AND id = ?"),
      put: db.prepare(
        "INSERT INTO records (ns, id, value, updated) VALUES (?, ?, ?, ?) " +
          "ON CONFLICT (ns, id) DO UPDATE SET value = excluded.value, updated = excluded.updated",
      ),
      del: db.prepare("DELETE FROM records WHERE ns = ? AND id = ?"),
      list: db.prepare("SELECT id, value FROM records WHERE ns = ? ORDER BY rowid"),
      listPrefix: db.prepare(
        "SELECT id, value FROM records WHERE ns = ? AND id >= ? AND id < ? ORDER BY rowid",
      ),
      count: db.prepare("SELECT count(*) AS n FROM records WHERE ns = ?"),
      cacheCount: db.prepare("SELECT count(*) AS n FROM cache WHERE kind = ?"),
    };
  }

  /** Open (creating it and its directory if needed) the store at `path`; ":memory:" for a throwaway one. */
  static open(path: string): Store {
    const full = path === ":memory:" ? path : resolve(path);
    if (full !== ":memory:") mkdirSync(dirname(full), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(full);
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.pragma("busy_timeout = 10000");
      return new Store(full, db);
    } catch (err) {
      throw new BuckleError(`cannot open the store ${full}: ${(err as Error).message}`, {
        hint: "the file must be a buckle SQLite store (or not exist yet) in a writable directory",
        cause: err,
      });
    }
  }

  /** The cached value under `key`, or undefined. */
  cacheGet<T>(key: string): T | undefined {
    const row = this.stmts.cacheGet.get(key);
    return row === undefined ? undefined : (JSON.parse(row.value) as T);
  }

  /** Cache `value` under `key` (first write wins: a key always names the same content). */
  cachePut(key: string, kind: string, value: unknown): void {
    this.stmts.cachePut.run(key, kind, JSON.stringify(value), Date.now() / 1000);
  }

  /** Number of cache entries of one kind ("generate", "logprobs", ...). */
  cacheCount(kind: string): number {
    return this.stmts.cacheCount.get(kind)?.n ?? 0;
  }

  get<T>(ns: string, id: string): T | undefined {
    const row = this.stmts.get.get(ns, id);
    return row === undefined ? undefined : (JSON.parse(row.value) as T);
  }

  put(ns: string, id: string, value: unknown): void {
    this.stmts.put.run(ns, id, JSON.stringify(value), Date.now() / 1000);
  }

  delete(ns: string, id: string): void {
    this.stmts.del.run(ns, id);
  }

  /** Records of a namespace in insertion order; with `prefix`, only ids that start with it. */
  list<T>(ns: string, prefix?: string): StoredRecord<T>[] {
    const rows =
      prefix === undefined || prefix === ""
        ? this.stmts.list.all(ns)
        : this.stmts.listPrefix.all(ns, prefix, prefix + "\uffff");
    return rows.map((r) => ({ id: r.id, value: JSON.parse(r.value) as T }));
  }

  count(ns: string): number {
    return this.stmts.count.get(ns)?.n ?? 0;
  }

  /** Run `fn` in one transaction: all of its writes land together or none do. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
