// File-system helpers: atomic writes (temp file + rename) and the cache directory.

import { mkdirSync, renameSync, writeFileSync, openSync, closeSync, fsyncSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { randomBytes } from "node:crypto";

/** Root of buckle's cache: $BUCKLE_CACHE_DIR, else $XDG_CACHE_HOME/buckle, else ~/.cache/buckle. */
export function cacheDir(...parts: string[]): string {
  const root =
    process.env.BUCKLE_CACHE_DIR ??
    (process.env.XDG_CACHE_HOME
      ? join(process.env.XDG_CACHE_HOME, "buckle")
      : join(homedir(), ".cache", "buckle"));
  return resolve(root, ...parts);
}

/** A sibling temp path for `path`, unique per call. */
export function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** Write a whole file atomically: readers see the old content or the new, never half of it. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  const tmp = tempPathFor(path);
  try {
    writeFileSync(tmp, data);
    const fd = openSync(tmp, "r+");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
