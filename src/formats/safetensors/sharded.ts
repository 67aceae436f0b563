// Sharded checkpoints: model.safetensors.index.json maps each tensor name to one of several shard files.
// The shards are presented as a single TensorSet so callers never care how a checkpoint was split.

import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { FileFormatError, InputError } from "../../util/errors.js";
import { unknownTensor, openSafetensors, type SafetensorsTensorInfo, type TensorSet } from "./reader.js";

export const INDEX_FILE_NAME = "model.safetensors.index.json";
/** Index files list tensor names only; even 100k tensors fit in a few MiB. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

/**
 * Open a sharded checkpoint from its index file, or from a directory holding model.safetensors.index.json.
 * Only tensors listed in `weight_map` are presented; every one must be present in the shard it names.
 */
export function openSafetensorsIndex(dirOrIndex: string): TensorSet {
  let indexPath = dirOrIndex;
  if (existsSync(dirOrIndex) && statSync(dirOrIndex).isDirectory())
    indexPath = join(dirOrIndex, INDEX_FILE_NAME);
  if (!existsSync(indexPath))
    throw new InputError(`no safetensors index at ${indexPath}`, {
      hint: `a sharded checkpoint has a ${INDEX_FILE_NAME} next to its shards`,
    });
  const size = statSync(indexPath).size;
  if (size > MAX_INDEX_BYTES)
    throw new FileFormatError(
      indexPath,
      undefined,
      `index is ${size} bytes, over the ${MAX_INDEX_BYTES}-byte limit`,
    );
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(indexPath, "utf8"));
  } catch (err) {
    throw new FileFormatError(
      indexPath,
      undefined,
      `not valid JSON (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new FileFormatError(indexPath, undefined, "the index is not a JSON object");
  const { weight_map: weightMap, metadata: rawMeta } = json as Record<string, unknown>;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap))
    throw new FileFormatError(indexPath, undefined, "weight_map is missing or not an object");

  const metadata: [string, string][] = [];
  if (typeof rawMeta === "object" && rawMeta !== null && !Array.isArray(rawMeta)) {
    for (const [k, v] of Object.entries(rawMeta)) {
      if (typeof v === "string" || typeof v === "number" || typeof v === "boolean")
        metadata.push([k, String(v)]);
    }
  }

  const dir = dirname(indexPath);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap)) {
    // Shard names come from the file; only bare names in the same directory are allowed, so no path can escape it.
    if (
      typeof shard !== "string" ||
      shard === "" ||
      basename(shard) !== shard ||
      shard === "." ||
      shard === ".."
    )
      throw new FileFormatError(
        indexPath,
        undefined,
        `weight_map[${JSON.stringify(name)}] is ${JSON.stringify(shard)}, not a file name in this directory`,
      );
    const list = byShard.get(shard);
    if (list) list.push(name);
    else byShard.set(shard, [name]);
  }

  const shards: TensorSet[] = [];
  const owner = new Map<string, TensorSet>();
  const tensors: SafetensorsTensorInfo[] = [];
  try {
    for (const [shard, names] of byShard) {
      const shardPath = join(dir, shard);
      if (!existsSync(shardPath))
        throw new FileFormatError(
          indexPath,
          undefined,
          `shard ${shard} (holding ${JSON.stringify(names[0])}) is missing`,
          {
            hint: "download every shard listed in the index",
          },
        );
      const set = openSafetensors(shardPath);
      shards.push(set);
      const listed = new Set(names);
      for (const name of names) {
        if (!set.tensor(name))
          throw new FileFormatError(
            shardPath,
            undefined,
            `tensor ${JSON.stringify(name)} is listed in ${basename(indexPath)} but not in this shard`,
          );
        owner.set(name, set);
      }
      for (const info of set.tensors) if (listed.has(info.name)) tensors.push(info);
    }
  } catch (err) {
    for (const s of shards) s.close();
    throw err;
  }

  const names = tensors.map((t) => t.name);
  const shardFor = (name: string): TensorSet => {
    const s = owner.get(name);
    if (!s) throw unknownTensor(indexPath, name, names);
    return s;
  };
  return {
    path: indexPath,
    metadata: Object.fromEntries(metadata),
    tensors,
    tensor: (name) => owner.get(name)?.tensor(name),
    readRaw: (name) => shardFor(name).readRaw(name),
    readF32: (name) => shardFor(name).readF32(name),
    close: () => {
      for (const s of shards) s.close();
    },
  };
}
