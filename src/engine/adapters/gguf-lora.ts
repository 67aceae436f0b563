// GGUF LoRA adapters in the layout llama.cpp's adapter loader reads (llama-server --lora, node-llama-cpp's
// createContext({ lora })), and reading them back into LoraWeights.

import {
  GGMLType,
  gv,
  openGGUF,
  writeGGUF,
  type GGUFTensorInput,
  type GGUFValue,
} from "../../formats/gguf/index.js";
import { ggufArchName } from "../../formats/model-gguf.js";
import type { ModelSpec } from "../../formats/model-spec.js";
import { FileFormatError, InputError } from "../../util/errors.js";
import { LORA_TARGETS, type LoraTarget, type LoraWeights } from "../types.js";
import { checkLoraMatchesSpec, GGUF_TARGET_TENSOR, loraEntries, targetShape } from "./lora.js";

/*
 * Layout. For a base tensor W ("blk.N.attn_q.weight", ggml ne = [in, out]) llama.cpp looks up the pair
 * "blk.N.attn_q.weight.lora_a" / ".lora_b" and checks A.ne = [in, rank], B.ne = [rank, out]; it computes
 * y += scale * B (A x) with scale = alpha / B.ne[0], taking alpha from adapter.lora.alpha. In PyTorch order
 * (ne reversed) that is A [rank, in] and B [out, rank]: exactly PEFT's lora_A / lora_B, so nothing is transposed.
 * Tensors are in GGUF row order already (LoraWeights' convention), so q/k B rows need no reordering either.
 * llama.cpp reads alpha == 0 as "scale 1", not 0, so a zero alpha is refused rather than silently changed.
 */

export interface WriteGGUFLoraOptions {
  /** Name of the base model, recorded as general.base_model.0.name. */
  baseName?: string;
  /** Tensor storage type: f32 (default, exact) or f16 (half the size). */
  dtype?: "f32" | "f16";
}

/** Write `lora` as a GGUF LoRA adapter for a base model of shape `spec` (atomically). */
export function writeGGUFLora(
  path: string,
  lora: LoraWeights,
  spec: ModelSpec,
  options: WriteGGUFLoraOptions = {},
): void {
  checkLoraMatchesSpec(lora, spec);
  const { rank, alpha, dropout } = lora.config;
  if (!(alpha > 0))
    throw new InputError(`LoRA alpha must be positive for a GGUF adapter, got ${alpha}`, {
      hint: "llama.cpp reads alpha 0 as scale 1",
    });
  const type = options.dtype === "f16" ? GGMLType.F16 : GGMLType.F32;
  const metadata: [string, GGUFValue][] = [
    ["general.architecture", gv.str(ggufArchName(spec.arch))],
    ["general.type", gv.str("adapter")],
    ["general.name", gv.str(options.baseName ? `${options.baseName} LoRA` : "buckle LoRA")],
    ["adapter.type", gv.str("lora")],
    ["adapter.lora.alpha", gv.f32(alpha)],
    // llama.cpp only reads the f32 alpha; the f64 copy lets buckle read back exactly the alpha it wrote.
    ["buckle.lora.alpha", gv.f64(alpha)],
    ["buckle.lora.dropout", gv.f64(dropout)],
  ];
  if (options.baseName) {
    metadata.push(["general.base_model.count", gv.u32(1)]);
    metadata.push(["general.base_model.0.name", gv.str(options.baseName)]);
  }
  const tensors: GGUFTensorInput[] = [];
  for (const [i, t, pair] of loraEntries(lora)) {
    const base = `blk.${i}.${GGUF_TARGET_TENSOR[t]}`;
    tensors.push({ name: `${base}.lora_a`, shape: [rank, pair.in], type, data: pair.a });
    tensors.push({ name: `${base}.lora_b`, shape: [pair.out, rank], type, data: pair.b });
  }
  if (tensors.length === 0) throw new InputError("the LoRA adapter has no adapted projections to write");
  writeGGUF(path, { metadata, tensors });
}

const LORA_NAME_RE = /^blk\.(0|[1-9][0-9]*)\.([a-z_]+\.weight)\.lora_(a|b)$/;
const TARGET_BY_TENSOR = new Map(LORA_TARGETS.map((t) => [GGUF_TARGET_TENSOR[t], t]));

/** Read a GGUF LoRA adapter (ours or convert_lora_to_gguf.py's) into LoraWeights for a base of shape `spec`. */
export function readGGUFLora(path: string, spec: ModelSpec): LoraWeights {
  const file = openGGUF(path);
  try {
    const bad = (msg: string, hint?: string): never => {
      throw new FileFormatError(path, undefined, msg, hint === undefined ? undefined : { hint });
    };
    if (file.getString("general.type") !== "adapter" || file.getString("adapter.type") !== "lora")
      bad('not a LoRA adapter (general.type must be "adapter" and adapter.type "lora")');
    const arch = file.getString("general.architecture");
    if (arch !== ggufArchName(spec.arch))
      bad(`adapter is for architecture ${JSON.stringify(arch)}, the model is ${ggufArchName(spec.arch)}`);
    const alpha32 = file.getNumber("adapter.lora.alpha") ?? 0;
    const alpha64 = file.getNumber("buckle.lora.alpha");
    const alpha = alpha64 !== undefined && Math.fround(alpha64) === alpha32 ? alpha64 : alpha32;
    const pairs = new Map<string, { layer: number; target: LoraTarget; a?: string; b?: string }>();
    for (const t of file.tensors) {
      const m = LORA_NAME_RE.exec(t.name);
      const target = m && TARGET_BY_TENSOR.get(m[2]);
      if (!m || !target) {
        // llama.cpp itself skips norm vectors in adapters; everything else is something we cannot apply.
        if (t.name.endsWith("_norm.weight")) continue;
        return bad(`tensor ${JSON.stringify(t.name)} is not a LoRA matrix of a llama-family projection`);
      }
      const layer = Number(m[1]);
      const key = `${layer}.${target}`;
      const entry = pairs.get(key) ?? { layer, target };
      if (m[3] === "a") entry.a = t.name;
      else entry.b = t.name;
      pairs.set(key, entry);
    }
    if (pairs.size === 0) bad("the adapter holds no LoRA tensors");
    let rank = 0;
    const layers: LoraWeights["layers"] = Array.from({ length: spec.numLayers }, () => ({}));
    const targets = new Set<LoraTarget>();
    for (const { layer, target, a, b } of pairs.values()) {
      if (!a || !b) return bad(`layer ${layer} ${target}: one of lora_a / lora_b is missing`);
      if (layer >= spec.numLayers) bad(`layer ${layer} is past the model's ${spec.numLayers} layers`);
      const ta = file.tensor(a);
      const tb = file.tensor(b);
      if (!ta || !tb) return bad(`layer ${layer} ${target}: tensor index is inconsistent`);
      const r = ta.shape[0];
      rank ||= r;
      const { in: n, out } = targetShape(spec, target);
      if (ta.shape.join(",") !== `${rank},${n}` || tb.shape.join(",") !== `${out},${rank}`)
        bad(
          `${a} is [${ta.shape.join(", ")}] and ${b} [${tb.shape.join(", ")}] (PyTorch order), ` +
            `expected [${rank}, ${n}] and [${out}, ${rank}]`,
          "mixed ranks are not supported, or the adapter is for another model",
        );
      targets.add(target);
      layers[layer][target] = { a: file.readTensorF32(ta), b: file.readTensorF32(tb), in: n, out };
    }
    // llama.cpp treats a missing/zero alpha as scale 1, i.e. alpha = rank in PEFT's terms.
    const lora: LoraWeights = {
      config: {
        rank,
        alpha: alpha > 0 ? alpha : rank,
        dropout: file.getNumber("buckle.lora.dropout") ?? 0,
        targets: LORA_TARGETS.filter((t) => targets.has(t)),
      },
      layers,
    };
    checkLoraMatchesSpec(lora, spec);
    return lora;
  } finally {
    file.close();
  }
}
