// Versions recorded in every output: buckle's own and those of the native pieces it calls.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

let cached: string | undefined;

/** buckle's version from its package.json. */
export function packageVersion(): string {
  if (cached === undefined) {
    const pkgPath = fileURLToPath(new URL("../../package.json", import.meta.url));
    cached = (JSON.parse(readFileSync(pkgPath, "utf8")) as { version: string }).version;
  }
  return cached;
}
