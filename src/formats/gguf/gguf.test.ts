// Tests for the GGUF reader and writer: lossless round trips of every value type and tensor type, rejection of
// bad files with positioned errors, and reading a real llama.cpp vocabulary file.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileFormatError, InputError, UnavailableError } from "../../util/errors.js";
import { builtinVocabPath } from "../vocabs.js";
import {
  encodeGGUF,
  f16BitsToF32,
  GGMLType,
  ggufInfo,
  GGUFValueType,
  gv,
  openGGUF,
  parseGGUF,
  quantize,
  dequantize,
  writeGGUF,
  type GGUFValue,
  type GGUFTensorInput,
} from "./index.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-gguf-test-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const tmp = (name = "t.gguf") => join(dir, `${n++}-${name}`);

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomF32(len: number, seed: number, scale = 1): Float32Array {
  const r = seeded(seed);
  return Float32Array.from({ length: len }, () => (r() * 2 - 1) * scale);
}

/** One value of every type, edge values included, and nested arrays. */
function everyType(): [string, GGUFValue][] {
  return [
    ["t.u8", gv.u8(255)],
    ["t.i8", gv.i8(-128)],
    ["t.u16", gv.u16(65535)],
    ["t.i16", gv.i16(-32768)],
    ["t.u32", gv.u32(4294967295)],
    ["t.i32", gv.i32(-2147483648)],
    ["t.f32", gv.f32(Math.fround(1e-5))],
    ["t.f32.nan", gv.f32(NaN)],
    ["t.bool", gv.bool(true)],
    ["t.bool.false", gv.bool(false)],
    ["t.string", gv.str("héllo ▁wörld 日本 \u{1F600} \0 end")],
    ["t.string.bom", gv.str("\uFEFFbom")],
    ["t.string.empty", gv.str("")],
    ["t.u64", gv.u64(2n ** 64n - 1n)],
    ["t.i64", gv.i64(-(2n ** 63n))],
    ["t.f64", gv.f64(Math.PI)],
    ["a.u8", gv.u8Arr([0, 1, 255])],
    ["a.i8", { type: GGUFValueType.ARRAY, itemType: GGUFValueType.INT8, value: Int8Array.from([-128, 127]) }],
    [
      "a.u16",
      { type: GGUFValueType.ARRAY, itemType: GGUFValueType.UINT16, value: Uint16Array.from([1, 65535]) },
    ],
    ["a.i16", { type: GGUFValueType.ARRAY, itemType: GGUFValueType.INT16, value: Int16Array.from([-1, 7]) }],
    ["a.u32", gv.u32Arr([7, 4294967295])],
    ["a.i32", gv.i32Arr([-5, 2147483647])],
    ["a.f32", gv.f32Arr([0.5, -1e-7, 3e38])],
    ["a.bool", gv.boolArr([true, false, true])],
    ["a.str", gv.strArr(["a", "", "▁x", "\u{10FFFF}", "<0x0A>"])],
    ["a.str.bad-utf8-neighbour", gv.strArr(["ok", "é"])],
    ["a.u64", gv.u64Arr([0, 2n ** 63n])],
    ["a.i64", gv.i64Arr([-1, 2n ** 52n])],
    ["a.f64", gv.f64Arr([1e300, -0])],
    ["a.empty", gv.strArr([])],
    [
      "a.nested",
      gv.arrArr([
        gv.i32Arr([1, 2]),
        gv.strArr(["x"]),
        gv.arrArr([gv.f32Arr([1.5]), gv.arrArr([])]),
        gv.boolArr([]),
      ]),
    ],
  ];
}

test("every metadata value type round-trips with its exact type", () => {
  const path = tmp();
  const meta = everyType();
  writeGGUF(path, { metadata: meta });
  const f = openGGUF(path);
  try {
    assert.equal(f.version, 3);
    assert.equal(f.alignment, 32);
    assert.equal(f.tensors.length, 0);
    assert.deepEqual(
      [...f.metadata.keys()],
      meta.map(([k]) => k),
    );
    for (const [k, v] of meta) assert.deepEqual(f.metadata.get(k), v, k);
    assert.equal(f.getString("t.string.bom"), "\uFEFFbom");
    assert.equal(f.getNumber("t.u32"), 4294967295);
    assert.equal(f.getNumber("t.i8"), -128);
    assert.equal(f.getBool("t.bool.false"), false);
    assert.deepEqual(f.getStringArray("a.str"), ["a", "", "▁x", "\u{10FFFF}", "<0x0A>"]);
    assert.deepEqual(f.getNumberArray("a.u8"), [0, 1, 255]);
    assert.deepEqual(f.getNumberArray("a.i64"), [-1, 2 ** 52]);
    assert.deepEqual(f.getInt32Array("a.i32"), Int32Array.from([-5, 2147483647]));
    assert.deepEqual(f.getInt32Array("a.i8"), Int32Array.from([-128, 127]));
    assert.deepEqual(f.getFloat32Array("a.f32"), Float32Array.from([0.5, -1e-7, 3e38]));
    assert.equal(f.getString("missing"), undefined);
    assert.equal(f.getNumberArray("missing"), undefined);
  } finally {
    f.close();
  }
  // Writing what we read gives the same bytes: nothing is lost or reordered.
  const again = tmp();
  const f2 = openGGUF(path);
  writeGGUF(again, { metadata: f2.metadata });
  f2.close();
  assert.deepEqual(readFileSync(again), readFileSync(path));
});

test("getters throw a positioned FileFormatError when the key has another type", () => {
  const f = parseGGUF(encodeGGUF({ metadata: everyType() }), "mem.gguf");
  assert.throws(
    () => f.getString("t.u32"),
    (e: unknown) =>
      e instanceof FileFormatError &&
      /"t\.u32" is u32, expected string/.test(e.message) &&
      e.offset !== undefined,
  );
  assert.throws(() => f.getNumber("t.string"), /is string, expected a number/);
  assert.throws(() => f.getBool("t.u8"), /expected bool/);
  assert.throws(() => f.getStringArray("a.i32"), /array of i32, expected array of string/);
  assert.throws(() => f.getFloat32Array("a.f64"), /expected array of f32/);
  assert.throws(() => f.getInt32Array("a.u32"), /expected array of i32/);
  assert.throws(() => f.getNumberArray("a.str"), /expected array of numbers/);
  // u64 values beyond 2^53 are refused rather than rounded.
  assert.throws(() => f.getNumber("t.u64"), /does not fit a JavaScript number/);
  assert.throws(() => f.getNumberArray("a.u64"), /item 1 .* does not fit/);
  assert.equal(parseGGUF(encodeGGUF({ metadata: [["x", gv.u64(2 ** 53 - 1)]] })).getNumber("x"), 2 ** 53 - 1);
});

function tensorSet(): GGUFTensorInput[] {
  return [
    { name: "f32.mat", shape: [3, 5], type: GGMLType.F32, data: randomF32(15, 1, 10) },
    { name: "f16.mat", shape: [4, 64], type: GGMLType.F16, data: () => randomF32(256, 2, 3) },
    { name: "bf16.vec", shape: [33], type: GGMLType.BF16, data: randomF32(33, 3, 100) },
    { name: "q8.mat", shape: [2, 3, 64], type: GGMLType.Q8_0, data: randomF32(384, 4) },
    { name: "q8.4d", shape: [1, 2, 1, 32], type: GGMLType.Q8_0, data: randomF32(64, 5, 0.01) },
  ];
}

for (const alignment of [32, 64, 1]) {
  test(`tensors round-trip at alignment ${alignment}: F32 exact, F16/BF16/Q8_0 bit-exact vs our encoder`, () => {
    const path = tmp();
    const tensors = tensorSet();
    const res = writeGGUF(path, { metadata: [["general.architecture", gv.str("test")]], tensors, alignment });
    assert.equal(res.fileSize, statSync(path).size);
    const f = openGGUF(path);
    try {
      assert.equal(f.alignment, alignment);
      assert.equal(f.dataOffset % alignment, 0);
      assert.equal(res.dataOffset, f.dataOffset);
      if (alignment === 32) assert.equal(f.metadata.has("general.alignment"), false);
      else assert.deepEqual(f.metadata.get("general.alignment"), gv.u32(alignment));
      assert.equal(f.tensors.length, tensors.length);
      for (const t of tensors) {
        const info = f.tensor(t.name);
        assert.ok(info, t.name);
        assert.deepEqual(info.shape, t.shape);
        assert.deepEqual(info.dims, [...t.shape].reverse());
        assert.equal(info.type, t.type);
        assert.equal(info.offset % alignment, 0);
        const src = typeof t.data === "function" ? t.data() : t.data;
        assert.ok(src instanceof Float32Array);
        assert.equal(info.elementCount, src.length);
        const raw = f.readTensorRaw(t.name);
        assert.equal(raw.byteLength, info.byteSize);
        assert.deepEqual(raw, quantize(t.type as GGMLType.F32, src), `${t.name} bytes`);
        const back = f.readTensorF32(info);
        assert.deepEqual(back, dequantize(t.type, quantize(t.type as GGMLType.F32, src), src.length));
        const tol = { [GGMLType.F32]: 0, [GGMLType.F16]: 2 ** -11, [GGMLType.BF16]: 2 ** -8 }[
          t.type as number
        ];
        let amax = 0;
        for (const x of src) amax = Math.max(amax, Math.abs(x));
        for (let i = 0; i < src.length; i++) {
          const bound = tol !== undefined ? Math.abs(src[i]) * tol : amax / 127; // Q8_0: half a step per block at most, bounded loosely
          assert.ok(Math.abs(back[i] - src[i]) <= bound + 1e-12, `${t.name}[${i}]: ${back[i]} vs ${src[i]}`);
        }
      }
      // Tensors are laid out in order, without overlap, each padded to the alignment.
      const sorted = [...f.tensors].sort((a, b) => a.offset - b.offset);
      for (let i = 1; i < sorted.length; i++) {
        assert.equal(
          sorted[i].offset,
          sorted[i - 1].offset + Math.ceil(sorted[i - 1].byteSize / alignment) * alignment,
        );
      }
    } finally {
      f.close();
    }
    // The in-memory encoder and the streaming writer produce the same file.
    assert.deepEqual(
      encodeGGUF({ metadata: [["general.architecture", gv.str("test")]], tensors, alignment }),
      new Uint8Array(readFileSync(path)),
    );
  });
}

test("raw tensor bytes of any known type are written as given and sized by the type table", () => {
  const q4k = new Uint8Array(144 * 2).map((_, i) => (i * 37) & 0xff);
  q4k[0] = 0x66;
  q4k[1] = 0x2e; // d = ~0.1, keeps values finite
  q4k[144] = 0x66;
  q4k[145] = 0x2e;
  const iq = new Uint8Array(66);
  const f = parseGGUF(
    encodeGGUF({
      metadata: [],
      tensors: [
        { name: "q4k", shape: [2, 256], type: GGMLType.Q4_K, data: q4k },
        { name: "iq", shape: [256], type: GGMLType.IQ2_XXS, data: () => iq },
      ],
    }),
  );
  assert.deepEqual(f.readTensorRaw("q4k"), q4k);
  assert.equal(f.tensor("q4k")?.byteSize, 288);
  assert.equal(f.readTensorF32("q4k").length, 512);
  assert.equal(f.tensor("iq")?.byteSize, 66);
  assert.throws(
    () => f.readTensorF32("iq"),
    (e: unknown) => e instanceof UnavailableError && /IQ2_XXS/.test(e.message),
  );
  assert.throws(() => f.readTensorRaw("nope"), InputError);
});

test("writer validates its input and leaves no temp file behind on failure", () => {
  const sub = mkdtempSync(join(dir, "w-"));
  const path = join(sub, "x.gguf");
  const ok = { name: "w", shape: [32], type: GGMLType.Q8_0, data: new Float32Array(32) };
  assert.throws(() => writeGGUF(path, { metadata: [["a", gv.u8(256)]] }), /not a u8/);
  assert.throws(() => writeGGUF(path, { metadata: [["a", gv.u32(-1)]] }), /not a u32/);
  assert.throws(
    () =>
      writeGGUF(path, {
        metadata: [
          ["a", gv.str("x")],
          ["a", gv.str("y")],
        ],
      }),
    /appears twice/,
  );
  assert.throws(() => writeGGUF(path, { metadata: [["", gv.str("x")]] }), /non-empty/);
  assert.throws(() => writeGGUF(path, { metadata: [], alignment: 48 }), /power of two/);
  assert.throws(() => writeGGUF(path, { metadata: [], tensors: [ok, ok] }), /twice/);
  assert.throws(() => writeGGUF(path, { metadata: [], tensors: [{ ...ok, shape: [31] }] }), /blocks of 32/);
  assert.throws(
    () => writeGGUF(path, { metadata: [], tensors: [{ ...ok, shape: [1, 1, 1, 1, 32] }] }),
    /1 to 4/,
  );
  assert.throws(
    () => writeGGUF(path, { metadata: [], tensors: [{ ...ok, name: "n".repeat(64) }] }),
    /63-byte/,
  );
  assert.throws(
    () =>
      writeGGUF(path, {
        metadata: [],
        tensors: [{ ...ok, type: GGMLType.Q4_K, shape: [256], data: new Float32Array(256) }],
      }),
    /cannot encode float32 data as Q4_K/,
  );
  // Data errors surface while streaming: the temp file must be cleaned up and nothing left at `path`.
  assert.throws(
    () => writeGGUF(path, { metadata: [], tensors: [{ ...ok, data: () => new Float32Array(31) }] }),
    /needs 32 values/,
  );
  assert.throws(
    () => writeGGUF(path, { metadata: [], tensors: [{ ...ok, data: new Uint8Array(33) }] }),
    /34 bytes, got 33/,
  );
  assert.deepEqual(readdirSync(sub), []);
  // general.alignment in the metadata is honoured, and an explicit alignment rewrites it.
  const p2 = join(sub, "a.gguf");
  writeGGUF(p2, { metadata: [["general.alignment", gv.u32(64)]], tensors: [ok] });
  assert.equal(openGGUF(p2).alignment, 64);
  writeGGUF(p2, { metadata: [["general.alignment", gv.u32(64)]], tensors: [ok], alignment: 128 });
  const f = openGGUF(p2);
  assert.equal(f.alignment, 128);
  assert.deepEqual(f.metadata.get("general.alignment"), gv.u32(128));
  f.close();
  assert.deepEqual(readdirSync(sub), ["a.gguf"]);
});

/** A small valid file plus helpers to corrupt it at known places. */
function sample(): Uint8Array {
  return encodeGGUF({
    metadata: [
      ["general.architecture", gv.str("llama")],
      ["a", gv.strArr(["x", "yy"])],
    ],
    tensors: [
      { name: "w", shape: [2, 32], type: GGMLType.F32, data: randomF32(64, 9) },
      { name: "v", shape: [32], type: GGMLType.Q8_0, data: randomF32(32, 10) },
    ],
  });
}

function expectFormatError(bytes: Uint8Array, re: RegExp, offset?: number): void {
  const path = tmp("bad.gguf");
  writeFileSync(path, bytes);
  assert.throws(
    () => openGGUF(path),
    (e: unknown) => {
      assert.ok(e instanceof FileFormatError, `expected FileFormatError, got ${String(e)}`);
      assert.match(e.message, re);
      assert.ok(e.message.startsWith(path), e.message);
      if (offset !== undefined) assert.equal(e.offset, offset, e.message);
      return true;
    },
  );
}

function patch(b: Uint8Array, at: number, bytes: number[]): Uint8Array {
  const c = b.slice();
  c.set(bytes, at);
  return c;
}

function u64le(v: bigint): number[] {
  return Array.from({ length: 8 }, (_, i) => Number((BigInt.asUintN(64, v) >> BigInt(8 * i)) & 0xffn));
}

test("reader rejects bad headers with the offset and what was expected", () => {
  const b = sample();
  expectFormatError(new Uint8Array(0), /expected the magic "GGUF" but the file has only 0 bytes/, 0);
  expectFormatError(
    patch(b, 0, [0x47, 0x47, 0x4d, 0x4c]),
    /expected the magic "GGUF" \(47 47 55 46\), found 47 47 4d 4c/,
    0,
  );
  expectFormatError(patch(b, 4, [1, 0, 0, 0]), /version 1 is not supported/, 4);
  expectFormatError(patch(b, 4, [4, 0, 0, 0]), /expected GGUF version 2 or 3, found 4/, 4);
  expectFormatError(patch(b, 4, [0, 0, 0, 3]), /big-endian/, 4);
  expectFormatError(b.slice(0, 10), /expected the tensor count \(8 bytes\) but only 2 bytes remain/, 8);
  expectFormatError(patch(b, 8, u64le(2n ** 62n)), /claims 4611686018427387904 tensors/, 8);
  expectFormatError(patch(b, 16, u64le(2n ** 64n - 1n)), /claims 18446744073709551615 metadata entries/, 16);
  // Version 2 files are read the same way.
  assert.equal(parseGGUF(patch(b, 4, [2, 0, 0, 0])).version, 2);
});

test("reader rejects lying lengths, bad types, duplicates and deep nesting", () => {
  const b = sample();
  // Key of entry 0: its length at 24, the string at 32; value type after it.
  expectFormatError(
    patch(b, 24, u64le(2n ** 40n)),
    /key of metadata entry 0: its length field says 1099511627776 bytes but only/,
    24,
  );
  expectFormatError(patch(b, 24, u64le(2n ** 63n)), /2\^53 or more/, 24);
  const typeAt = 32 + "general.architecture".length;
  expectFormatError(
    patch(b, typeAt, [13, 0, 0, 0]),
    /expected a value type id 0\.\.12 for "general.architecture", found 13/,
    typeAt,
  );
  // Array "a": key length 8 bytes + "a", type (4), item type (4), count (8).
  const aKey = typeAt + 4 + 8 + "llama".length;
  const countAt = aKey + 8 + 1 + 4 + 4;
  expectFormatError(
    patch(b, countAt, u64le(2n ** 61n)),
    /array "a" claims 2305843009213693952 items of string/,
    countAt,
  );
  expectFormatError(
    patch(b, countAt - 4, [99, 0, 0, 0]),
    /item type id 0\.\.12 for array "a", found 99/,
    countAt - 4,
  );
  expectFormatError(encodeDup("key"), /duplicate metadata key "k"/);
  expectFormatError(encodeDup("tensor"), /duplicate tensor name "t"/);
  expectFormatError(
    patch(encodeGGUF({ metadata: [["k", gv.bool(true)]] }), 24 + 9 + 4, [2]),
    /expected a bool \(0 or 1\)/,
    37,
  );
  let deep = gv.u8Arr([1]);
  for (let i = 0; i < 7; i++) deep = gv.arrArr([deep]);
  assert.equal(parseGGUF(encodeGGUF({ metadata: [["d", deep]] })).metadata.size, 1);
  // Hand-build one level deeper than the writer allows.
  const tooDeep: number[] = [];
  for (let i = 0; i < 9; i++) tooDeep.push(9, 0, 0, 0, ...u64le(1n));
  tooDeep.push(0, 0, 0, 0, ...u64le(0n));
  const hdr = [
    ...Buffer.from("GGUF"),
    3,
    0,
    0,
    0,
    ...u64le(0n),
    ...u64le(1n),
    ...u64le(1n),
    0x64,
    9,
    0,
    0,
    0,
  ];
  expectFormatError(Uint8Array.from([...hdr, ...tooDeep]), /nests arrays more than 8 deep/);
  // general.alignment must be a u32 power of two.
  expectFormatError(
    encodeGGUF({ metadata: [["general.alignment", gv.u32(32)]] }).map((x, i) => (i === 32 + 17 + 4 ? 48 : x)),
    /power of two, found 48/,
  );
  // The writer refuses a non-u32 alignment, so write another key and rename it in place.
  const wrongType = patch(encodeGGUF({ metadata: [["general.alignmenX", gv.u64(32)]] }), 32 + 16, [0x74]);
  expectFormatError(wrongType, /general.alignment to be u32, found u64/);
});

function encodeDup(kind: "key" | "tensor"): Uint8Array {
  const b = encodeGGUF({
    metadata: [
      ["k", gv.u8(1)],
      ["j", gv.u8(2)],
    ],
    tensors: [
      { name: "t", shape: [1], type: GGMLType.F32, data: new Float32Array(1) },
      { name: "s", shape: [1], type: GGMLType.F32, data: new Float32Array(1) },
    ],
  });
  const s = Buffer.from(b);
  if (kind === "key") s[s.indexOf("j", 24)] = "k".charCodeAt(0);
  else s[s.lastIndexOf(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0x73])) + 8] = "t".charCodeAt(0);
  return new Uint8Array(s);
}

test("reader rejects bad tensor infos: dims, types, offsets, sizes, overlaps", () => {
  const b = sample();
  const s = Buffer.from(b);
  // Tensor "w": name (8 + 1), n_dims at +9, dims at +13 and +21, type at +29, offset at +33.
  const w = s.indexOf(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0x77]));
  const nd = w + 9;
  expectFormatError(patch(b, nd, [5, 0, 0, 0]), /expected at most 4 dimensions for tensor "w", found 5/, nd);
  expectFormatError(patch(b, nd + 4, u64le(-1n)), /dimension 0 of tensor "w" is negative \(-1\)/, nd + 4);
  expectFormatError(patch(b, nd + 4, u64le(2n ** 40n)), /claims 1099511627776 or more elements/, nd + 4);
  expectFormatError(
    patch(b, nd + 12, u64le(2n ** 62n)),
    /more than any file can hold|far more than the file/,
    nd + 12,
  );
  expectFormatError(patch(b, nd + 20, [4, 0, 0, 0]), /unknown ggml type id 4 for tensor "w"/, nd + 20);
  expectFormatError(
    patch(b, nd + 20, [12, 0, 0, 0]),
    /Q4_K has rows of 32 elements, not a multiple of its block size 256/,
    nd + 20,
  );
  expectFormatError(
    patch(b, nd + 24, u64le(4n)),
    /data offset 4 is not a multiple of the alignment 32/,
    nd + 24,
  );
  expectFormatError(
    patch(b, nd + 24, u64le(2n ** 63n)),
    /data offset 9223372036854775808 is past the end/,
    nd + 24,
  );
  // Point "w" at "v"'s data: overlapping ranges are a lie.
  const v = s.indexOf(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0x76]));
  const vOffset = s.readBigUInt64LE(v + 9 + 4 + 8 + 4);
  expectFormatError(patch(b, v + 9 + 4 + 8 + 4, u64le(0n)), /overlaps tensor/);
  expectFormatError(patch(b, v + 9 + 4 + 8 + 4, u64le(vOffset + 32n)), /extends past the end of the file/);
  // Truncated data section.
  expectFormatError(
    b.slice(0, b.length - 64),
    /tensor "v" \(Q8_0, 34 bytes\) at data offset 256 .* extends past the end/,
  );
});

test("a zero-element tensor and a file without tensors are fine (as in llama.cpp)", () => {
  const b = sample();
  const s = Buffer.from(b);
  const w = s.indexOf(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0x77]));
  const f = parseGGUF(patch(b, w + 9 + 4 + 8, u64le(0n)));
  assert.equal(f.tensor("w")?.elementCount, 0);
  assert.equal(f.readTensorF32("w").length, 0);
  // Our writer pads the header like llama.cpp's; the data offset is where the header ends, padding or not.
  const g = parseGGUF(encodeGGUF({ metadata: [["x", gv.str("y")]] }));
  assert.equal(g.fileSize, 64);
  assert.equal(g.dataOffset, 24 + 9 + 4 + 9);
});

test("real llama.cpp vocab file (llama-spm) reads with the expected values", () => {
  const path = builtinVocabPath("llama-spm");
  const t0 = performance.now();
  const f = openGGUF(path);
  const ms = performance.now() - t0;
  try {
    assert.equal(f.version, 3);
    assert.equal(f.getString("general.architecture"), "llama");
    assert.equal(f.getString("tokenizer.ggml.model"), "llama");
    const tokens = f.getStringArray("tokenizer.ggml.tokens");
    assert.ok(tokens);
    assert.equal(tokens.length, 32000);
    assert.deepEqual(tokens.slice(0, 4), ["<unk>", "<s>", "</s>", "<0x00>"]);
    assert.equal(tokens[29871], "▁");
    const scores = f.getFloat32Array("tokenizer.ggml.scores");
    assert.equal(scores?.length, 32000);
    const types = f.getInt32Array("tokenizer.ggml.token_type");
    assert.deepEqual([...(types?.subarray(0, 4) ?? [])], [2, 3, 3, 6]);
    assert.equal(f.getNumber("tokenizer.ggml.bos_token_id"), 1);
    assert.equal(f.getBool("tokenizer.ggml.add_bos_token"), true);
    assert.equal(f.getNumber("llama.context_length"), 4096);
    assert.equal(f.tensors.length, 0);
    assert.equal(f.dataOffset, f.fileSize);
    assert.ok(ms < 5000, `opening took ${ms} ms`);
    const info = ggufInfo(f, { maxArrayItems: 2 });
    const json = JSON.parse(JSON.stringify(info)) as typeof info;
    assert.deepEqual(json.metadata["tokenizer.ggml.tokens"], {
      type: "array",
      itemType: "string",
      length: 32000,
      head: ["<unk>", "<s>"],
    });
    assert.deepEqual(json.metadata["general.architecture"], { type: "string", value: "llama" });
    assert.equal(json.totals.tensorCount, 0);
    // Re-writing the file through our writer reproduces the metadata exactly.
    const copy = tmp("vocab.gguf");
    writeGGUF(copy, { metadata: f.metadata });
    const g = openGGUF(copy);
    assert.deepEqual(g.metadata, f.metadata);
    g.close();
  } finally {
    f.close();
  }
});

test("ggufInfo: tensor table, totals by type, truncated arrays, bigints and non-finite numbers", () => {
  const f = parseGGUF(
    encodeGGUF({
      metadata: [
        ["big", gv.u64(2n ** 60n)],
        ["small", gv.i64(-3)],
        ["nan", gv.f32(NaN)],
        ["arr", gv.i32Arr([1, 2, 3, 4, 5])],
        ["nested", gv.arrArr([gv.strArr(["a", "b", "c"])])],
      ],
      tensors: tensorSet(),
    }),
    "mem",
  );
  const info = ggufInfo(f, { maxArrayItems: 3 });
  assert.deepEqual(info.metadata.big, { type: "u64", value: "1152921504606846976" });
  assert.deepEqual(info.metadata.small, { type: "i64", value: -3 });
  assert.deepEqual(info.metadata.nan, { type: "f32", value: "NaN" });
  assert.deepEqual(info.metadata.arr, { type: "array", itemType: "i32", length: 5, head: [1, 2, 3] });
  assert.deepEqual(info.metadata.nested, {
    type: "array",
    itemType: "array",
    length: 1,
    value: [{ type: "array", itemType: "string", length: 3, value: ["a", "b", "c"] }],
  });
  assert.equal(info.tensors.length, 5);
  assert.deepEqual(info.tensors[3], {
    name: "q8.mat",
    shape: [2, 3, 64],
    type: "Q8_0",
    bytes: 12 * 34,
    offset: info.tensors[3].offset,
  });
  assert.deepEqual(info.totals.byType.Q8_0, { count: 2, elements: 448, bytes: 14 * 34 });
  assert.equal(info.totals.parameterCount, 15 + 256 + 33 + 384 + 64);
  assert.doesNotThrow(() => JSON.stringify(info));
});

test("f16 known values stored by the writer", () => {
  const f = parseGGUF(
    encodeGGUF({
      metadata: [],
      tensors: [{ name: "h", shape: [4], type: GGMLType.F16, data: Float32Array.from([1, -2, 0.1, 65520]) }],
    }),
  );
  const raw = f.readTensorRaw("h");
  assert.deepEqual([...new Uint16Array(raw.buffer)], [0x3c00, 0xc000, 0x2e66, 0x7c00]);
  assert.equal(f16BitsToF32(0x2e66), Math.fround(0.0999755859375));
});
