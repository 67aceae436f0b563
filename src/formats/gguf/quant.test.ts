// Tests for float conversions and (de)quantization, checked against vectors computed with llama.cpp's gguf-py.
// The vectors were generated once (numpy + gguf-py quants.py) from the deterministic inputs rebuilt below.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  bf16BitsToF32,
  dequantize,
  f16BitsToF32,
  f32ToBF16Bits,
  f32ToF16Bits,
  quantize,
  quantizeQ8_0,
  canDequantize,
} from "./quant.js";
import { GGMLType, ggmlTypeFromName, ggmlTypeInfo, ggmlTypeName, knownGGMLTypes } from "./types.js";

const Q8_IN =
  "ec0795bf94a5cc3d904ab0bf5d59163f2cfb823e000000005e3e9fbf00002040dba59a3ed8fa65bf2ebf50bee03eb7bf92a3b03ed68a5ebf30f07abe5e300abe8447863fea6aac3f84f08abf871d883f3b9832bf1a0b773feaab48be9ab8e2bcbcd8803e1122b93f8912953f857190be928135bf482dfabe2fff863fc14bd7be6c2d7b3dbafbd43d36b7a0be1838983f509f09bf2fa8b63f32f0babe08f62abf50b1b7be402b6e3f3d36b7be2ef1153ec71181bfc2c7ad3f89363b3f8bceb5bd684d923f12e9b0bf9ac53c3edac7643e6acbd93b802c21bd62a4fd3eead987bf22c6373f0a1940becca3e73e602263bf7aa7a8bfdcb2613f6094883fac72ab3d00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003491693e2630883eb7d5b63f62aeb13f41dd27bf43b7fe3e898ea1bf1e51203fcc830d3ff04b7d3e6b47e33ed0a7503fe79940bf769349bf828bbbbff3f5a33f802474bf04b629bfba1538bfb0e11e3f91ef02bee01395bfb2de46bf8cdab0be4c365f3f40a0953f8508ea3de426bb3f540fd53e8ab23e3d4247b6bc0a681ebfe6a654bfce0bd33e0f8767bf431c813f7a16ff3cadee003f14d6d8bc049b933f28f762bfa25a3c3fee26b03f92eda8bd1a62583f3629573fec55ab3f447bcabe6ca607bea7df67bea26df43dbcb296bf347a74bfeb10a3bfe9c07d3e2a3db23fad430f3fd36b973fc50cfa3eced3b33f5a456bbef45c543fcbdb92bfae56963f38b7b43e7adabbbe9b44b0bf14b033bf5fdb50bf038d9bbfb9fd31bf50c8c8be8a11b63f1a809dbf4cb2a6be122351bf6ad00fbf5c373abfc25f443f6e2ab93e04d8bcbdd01a40bf1c622ebe02b4a5bf1ecb9bbe14bd95bd44d11bbfec6f873f47e67b3f56f8a0bfc63b9d3f3a1fbdbfe45b61bfc255b53f4168a83ed83d1cbfd26e443fa0c1613f713e293c07543bbf057e25be461fb03fad147bbe727d7fbf4366ba3ffd90b23ed8d8ac3f26b4aebf42e7843fb08ffe3eeeec43be726d073fb03e4cbf54e4463fc935b33f3ba2893efa8193bf2df215bf5840b1be601babbfecea5dbfea611cbe76652dbfaf3099bf82f5b93f92919bbff709b73fcf2adb3c7a31d93e43c9983f0007843eaa466b3f56cb83bf9a0739bf7c71a93fd81533bfcff742bf4ece06bfb2dcc23ece8aa13f3682c7be16abbcbf6ecdbc3f5714053e552e373f3c04af3f00ad95bfe14e003f62cf05bf38de4c3ec101833f2ac23c3e8c6c853f61cebebf5b6f4b3f21c43abf6206453f028982bf321b58bf6697af3d";
const Q8_OUT =
  "0a25c505ba1e0d00c17f0fd2f6b712d4f4f93544c936dd31f6ff0d493bf2dce736ebc1210509e46ad07fe0c5e053e00da67941f86685101401fc2ca240ef28b18b4e5f0700000000000000000000000000000000000000000000000000000000000000000000e82114177c78c72b933630152647bfbc816fadc7c236f59bbde24c650a7f2404fecaaa21b525ae5b032efe68b0437cf94c4c79dcf4ec0b96aa8d167e336b2c7feb4b986af5211ee08ac4ba98c4de7a96e4bad0c1421ff8bff191e6facc5b55946a81b47a1cccdf21434d01c0f278eba97f1e76895b2bef2eba447a179bcde28bb4f3c5987f967d0202222466164ea8c271c4bfd3206cdf827e0b3d749c2bd3115710598144c242a9b807";
const DEQUANT: Record<string, { sha256: string; n: number; first: number[]; last: number }> = {
  Q4_0: {
    sha256: "fa1324224c63fd85db911e688fed173813fa1424a0cd9abb6cacc7c194f65868",
    n: 96,
    first: [-0.7998046875, -0.0999755859375, -0.6998291015625, -0.199951171875],
    last: -0.0,
  },
  Q4_1: {
    sha256: "fde7697728e9d4bfeefb3c69bdab15cc5ef4d326540a5fa178cb39fc27655c0e",
    n: 96,
    first: [0.262451171875, 0.262451171875, 1.3621826171875, 0.46240234375],
    last: 0.0,
  },
  Q5_0: {
    sha256: "3d2c85665a543ff2699a5efbac7c7e4b37dc207d0e7334e2add5d9c6c2b0603a",
    n: 96,
    first: [1.2996826171875, 1.2996826171875, 0.599853515625, -0.0999755859375],
    last: 0.999755859375,
  },
  Q5_1: {
    sha256: "93599ba83e7b4d426b5aa9520a0e7d365e40624d5d9e2fbe36d5fd9c1fe0a360",
    n: 96,
    first: [0.0625, 1.1622314453125, 0.46240234375, 1.862060546875],
    last: -0.4998779296875,
  },
  Q8_0: {
    sha256: "c548991370f285d86efeb659a160fd2a0b81048bc7da5a966f5d1503426ca203",
    n: 96,
    first: [8.2979736328125, -3.399169921875, 4.0989990234375, -11.197265625],
    last: -11.59716796875,
  },
  Q2_K: {
    sha256: "87804fa97332b2a6a63456737914ffafde2dcbda61ef8eea0b2cb2a4512a4f73",
    n: 768,
    first: [0.5372314453125, 1.636962890625, 1.636962890625, 0.5372314453125],
    last: -0.7998046875,
  },
  Q3_K: {
    sha256: "5ba8c867798513cf5e4c28d4d7c9857b0039787a56e2a880ede900bac67fe8e0",
    n: 768,
    first: [1.399658203125, -4.198974609375, -5.5986328125, -4.198974609375],
    last: -3.59912109375,
  },
  Q4_K: {
    sha256: "c089f6acd3d510f43d2a78d5720ef85b24f278ab3dc9c0ce2be1cdfd5ffc515f",
    n: 768,
    first: [35.603515625, 49.400146484375, 31.004638671875, 44.80126953125],
    last: -45.6888427734375,
  },
  Q5_K: {
    sha256: "64ef138033863800628bd805622fd7dc141a66f6440f73cd9737ef636da886e6",
    n: 768,
    first: [33.6790771484375, 45.6761474609375, -0.8125, 27.6805419921875],
    last: -81.0802001953125,
  },
  Q6_K: {
    sha256: "e43c1dc23dc9983b4e955faa667d2a4c45b72f71ec2b0aaa9a95397bc45616cd",
    n: 768,
    first: [-134.3671875, 89.578125, -302.326171875, 55.986328125],
    last: -55.4864501953125,
  },
};
const F16_IN = [
  0.10000000149011612,
  -2.5,
  65504.0,
  65520.0,
  9.99999993922529e-9,
  5.99999978589949e-8,
  5.960464477539063e-8,
  2 ** -25,
  2.980232594040899e-8,
  0.3333333432674408,
  100000.0,
  -0.0,
  Infinity,
];
const F16_BITS = [11878, 49408, 31743, 31744, 0, 1, 1, 0, 1, 13653, 31744, 32768, 31744];

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** The same LCG as the generator script: x = (x * 1103515245 + 12345) mod 2^31, byte = (x >> 16) & 0xff. */
function lcgBytes(seed: number, n: number): Uint8Array {
  let x = BigInt(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245n + 12345n) % 2n ** 31n;
    out[i] = Number((x >> 16n) & 0xffn);
  }
  return out;
}

const D_OFFSETS: Record<string, number[]> = {
  Q4_0: [0],
  Q4_1: [0, 2],
  Q5_0: [0],
  Q5_1: [0, 2],
  Q8_0: [0],
  Q2_K: [80, 82],
  Q3_K: [108],
  Q4_K: [0, 2],
  Q5_K: [0, 2],
  Q6_K: [208],
};

function sha256(a: Float32Array): string {
  return createHash("sha256")
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest("hex");
}

test("f16: every half survives half -> float -> half (NaNs stay NaN)", () => {
  for (let h = 0; h < 65536; h++) {
    const back = f32ToF16Bits(f16BitsToF32(h));
    // A JS number cannot carry a signalling NaN (the CPU quiets it), so NaNs only need to stay NaNs of the same sign.
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) {
      assert.equal(back & 0xfc00, h & 0xfc00);
      assert.notEqual(back & 0x3ff, 0);
    } else assert.equal(back, h, `bits 0x${h.toString(16)}`);
  }
});

test("f16: midpoints between neighbours round to even, just off them round to nearest", () => {
  for (let h = 0; h < 0x7bff; h++) {
    const lo = f16BitsToF32(h);
    const hi = f16BitsToF32(h + 1);
    const mid = (lo + hi) / 2; // exact in float32: halves have 11-bit significands
    assert.equal(f32ToF16Bits(mid), h % 2 === 0 ? h : h + 1, `midpoint after 0x${h.toString(16)}`);
    assert.equal(f32ToF16Bits(Math.fround(mid - (hi - lo) / 4096)), h);
    assert.equal(f32ToF16Bits(Math.fround(mid + (hi - lo) / 4096)), h + 1);
    assert.equal(f32ToF16Bits(-mid), (h % 2 === 0 ? h : h + 1) | 0x8000);
  }
});

test("f16: known values from numpy (overflow, subnormals, signed zero, inf)", () => {
  assert.deepEqual(F16_IN.map(f32ToF16Bits), F16_BITS);
  assert.equal(f32ToF16Bits(NaN) & 0x7c00, 0x7c00);
  assert.notEqual(f32ToF16Bits(NaN) & 0x3ff, 0);
  assert.equal(f32ToF16Bits(-Infinity), 0xfc00);
  assert.equal(f16BitsToF32(1), 2 ** -24);
  assert.equal(f16BitsToF32(0x3c00), 1);
  assert.equal(f16BitsToF32(0xc000), -2);
  assert.equal(f16BitsToF32(0x7bff), 65504);
});

test("bf16: round to nearest even, NaN kept, values as ggml computes them", () => {
  assert.equal(f32ToBF16Bits(1), 0x3f80);
  assert.equal(f32ToBF16Bits(-2), 0xc000);
  // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
  assert.equal(f32ToBF16Bits(1 + 2 ** -8), 0x3f80);
  assert.equal(f32ToBF16Bits(1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(f32ToBF16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(f32ToBF16Bits(3.4e38), 0x7f80); // rounds up to inf
  assert.equal(f32ToBF16Bits(Infinity), 0x7f80);
  assert.ok(Number.isNaN(bf16BitsToF32(f32ToBF16Bits(NaN))));
  assert.equal(bf16BitsToF32(0x4049), 3.140625);
  for (let h = 0; h < 65536; h++) {
    const f = bf16BitsToF32(h);
    if (!Number.isNaN(f)) assert.equal(f32ToBF16Bits(f), h);
  }
});

test("Q8_0 quantization is byte-identical to llama.cpp's reference rounding", () => {
  const inBytes = hexBytes(Q8_IN);
  const x = new Float32Array(inBytes.buffer);
  assert.equal(x.length, 256);
  const q = quantizeQ8_0(x);
  assert.equal(Buffer.from(q).toString("hex"), Q8_OUT);
  assert.deepEqual(quantize(GGMLType.Q8_0, x), q);
});

test("Q8_0: roundf halves go away from zero, zero blocks, error within d/2", () => {
  // amax 127 -> d = 1, so x*id keeps the value: +-0.5 and +-2.5 are exact ties.
  const x = new Float32Array(32);
  x[0] = 127;
  x[1] = 0.5;
  x[2] = -0.5;
  x[3] = 2.5;
  x[4] = -2.5;
  const q = quantizeQ8_0(x);
  assert.deepEqual([...new Int8Array(q.buffer, 2, 5)], [127, 1, -1, 3, -3]);
  assert.deepEqual(dequantize(GGMLType.Q8_0, quantizeQ8_0(new Float32Array(64)), 64), new Float32Array(64));
  const y = Float32Array.from({ length: 1024 }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
  const back = dequantize(GGMLType.Q8_0, quantizeQ8_0(y), y.length);
  for (let b = 0; b < 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(y[b * 32 + j]));
    const d = amax / 127;
    for (let j = 0; j < 32; j++) {
      const i = b * 32 + j;
      // rounding to the grid (d/2) plus the f16 rounding of d itself (2^-11 relative, times |q| <= 127)
      assert.ok(Math.abs(back[i] - y[i]) <= d / 2 + amax * 2 ** -11 + 1e-7, `element ${i}`);
    }
  }
  assert.throws(() => quantizeQ8_0(new Float32Array(33)), /multiple of 32/);
});

for (const [name, expected] of Object.entries(DEQUANT)) {
  test(`dequantize ${name} matches gguf-py's dequantizer bit for bit`, () => {
    const type = ggmlTypeFromName(name);
    assert.ok(type !== undefined);
    const info = ggmlTypeInfo(type);
    assert.ok(info);
    const nblocks = 3;
    const bytes = lcgBytes(12345 + type, nblocks * info.typeSize);
    const d = [0x2e66, 0x2c00, 0xae66];
    for (let blk = 0; blk < nblocks; blk++) {
      D_OFFSETS[name].forEach((o, k) => {
        const v = d[(blk + k) % 3];
        bytes[blk * info.typeSize + o] = v & 0xff;
        bytes[blk * info.typeSize + o + 1] = v >> 8;
      });
    }
    const out = dequantize(type, bytes, nblocks * info.blockSize);
    assert.equal(out.length, expected.n);
    assert.deepEqual([...out.subarray(0, 4)], expected.first);
    assert.equal(out[out.length - 1], expected.last);
    assert.equal(sha256(out), expected.sha256);
    // An unaligned input view must give the same result.
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    assert.equal(sha256(dequantize(type, shifted.subarray(1), nblocks * info.blockSize)), expected.sha256);
  });
}

test("type table: sizes of well-known types match llama.cpp", () => {
  const expected: Record<string, [number, number]> = {
    F32: [1, 4],
    F16: [1, 2],
    BF16: [1, 2],
    Q4_0: [32, 18],
    Q4_1: [32, 20],
    Q5_0: [32, 22],
    Q5_1: [32, 24],
    Q8_0: [32, 34],
    Q8_1: [32, 36],
    Q2_K: [256, 84],
    Q3_K: [256, 110],
    Q4_K: [256, 144],
    Q5_K: [256, 176],
    Q6_K: [256, 210],
    Q8_K: [256, 292],
    IQ2_XXS: [256, 66],
    IQ2_XS: [256, 74],
    IQ3_XXS: [256, 98],
    IQ1_S: [256, 50],
    IQ4_NL: [32, 18],
    IQ3_S: [256, 110],
    IQ2_S: [256, 82],
    IQ4_XS: [256, 136],
    IQ1_M: [256, 56],
    TQ1_0: [256, 54],
    TQ2_0: [256, 66],
    MXFP4: [32, 17],
  };
  for (const [name, [bs, ts]] of Object.entries(expected)) {
    const t = ggmlTypeFromName(name);
    assert.ok(t !== undefined, name);
    assert.deepEqual([ggmlTypeInfo(t)?.blockSize, ggmlTypeInfo(t)?.typeSize], [bs, ts], name);
    assert.equal(ggmlTypeName(t), name);
  }
  assert.equal(GGMLType.BF16, 30);
  assert.equal(GGMLType.Q6_K, 14);
  assert.equal(ggmlTypeName(4), "type#4");
  assert.ok(knownGGMLTypes().length >= 30);
});

test("dequantize rejects wrong sizes and unsupported types with a clear error", () => {
  assert.throws(() => dequantize(GGMLType.Q8_0, new Uint8Array(33), 32), /34|bytes/);
  assert.throws(() => dequantize(GGMLType.IQ2_XXS, new Uint8Array(66), 256), /IQ2_XXS/);
  assert.equal(canDequantize(GGMLType.IQ2_XXS), false);
  assert.equal(canDequantize(GGMLType.Q4_K), true);
});

test("F16/BF16/F32 encode then decode within the format's precision", () => {
  const x = Float32Array.from({ length: 999 }, (_, i) => (i - 500) * 0.0137 + Math.cos(i));
  assert.deepEqual(dequantize(GGMLType.F32, quantize(GGMLType.F32, x), x.length), x);
  const h = dequantize(GGMLType.F16, quantize(GGMLType.F16, x), x.length);
  const b = dequantize(GGMLType.BF16, quantize(GGMLType.BF16, x), x.length);
  for (let i = 0; i < x.length; i++) {
    assert.ok(Math.abs(h[i] - x[i]) <= Math.abs(x[i]) * 2 ** -11 + 2 ** -25, `f16 ${i}`);
    assert.ok(Math.abs(b[i] - x[i]) <= Math.abs(x[i]) * 2 ** -8, `bf16 ${i}`);
  }
});
