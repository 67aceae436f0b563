// Content identity of model and adapter files: what a model's id (and so every cache key) is built from, so two
// different fine-tunes never share cached answers and copies of one file do.

import { closeSync, openSync, readdirSync, readSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { basename, join } from "node:path";

const SAMPLE = 64 * 1024;
const SAMPLES = 16;

/**
 * "<file name>:<size>:<12 hex digits>": a SHA-256 of the size, the first MiB (the GGUF header: metadata and
 * tensor table) and 16 evenly spaced 64 KiB windows of the rest (the weights), so copies share an id and
 * fine-tunes with the same header do not. Reads about 2 MiB whatever the file size.
 */
export function fileIdentity(path: string): string {
  if (statSync(path).isDirectory()) return directoryIdentity(path);
  const size = statSync(path).size;
  const hash = createHash("sha256");
  hash.update(String(size));
  const fd = openSync(path, "r");
  try {
    const read = (offset: number, length: number) => {
      const buf = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      const n = readSync(fd, buf, 0, buf.length, offset);
      hash.update(buf.subarray(0, n));
    };
    read(0, 1024 * 1024);
    if (size > 1024 * 1024) {
      for (let i = 0; i < SAMPLES; i++) {
        const offset = Math.floor(1024 * 1024 + ((size - 1024 * 1024 - SAMPLE) * i) / (SAMPLES - 1));
        read(Math.max(0, offset), SAMPLE);
      }
    }
  } finally {
    closeSync(fd);
  }
  return `${basename(path)}:${size}:${hash.digest("hex").slice(0, 12)}`;
}

/** A directory (a PEFT adapter): the identities of its regular files, sorted by name. */
function directoryIdentity(dir: string): string {
  const hash = createHash("sha256");
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isFile()) hash.update(`${name}=${fileIdentity(p)}\n`);
  }
  return `${basename(dir)}/:${hash.digest("hex").slice(0, 12)}`;
}
