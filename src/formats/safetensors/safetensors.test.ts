import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileFormatError, InputError } from "../../util/errors.js";
import { openSafetensors, openSafetensorsIndex, writeSafetensors } from "./index.js";
import {
  bf16BitsToF32,
  decodeBF16,
  decodeF16,
  encodeBF16,
  encodeF16,
  f16BitsToF32,
  f32ToBF16Bits,
  f32ToF16Bits,
} from "./half.js";

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "buckle-st-test-"));
}

/** Hand-assembled file, independent of the writer under test. */
function rawFile(
  header: unknown,
  data: Uint8Array,
  opts: { headerLen?: bigint; text?: string } = {},
): Uint8Array {
  const text = new TextEncoder().encode(opts.text ?? JSON.stringify(header));
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, opts.headerLen ?? BigInt(text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

test("byte-level f16/bf16 encode and decode are little-endian and inverse", () => {
  const values = Float32Array.from([1, -2, 0.5, 65504, 3.140625, -0]);
  const f16 = new Uint8Array(values.length * 2);
  encodeF16(values, f16);
  assert.deepEqual(Array.from(f16.subarray(0, 4)), [0x00, 0x3c, 0x00, 0xc0]);
  assert.deepEqual(decodeF16(f16), values);
  const bf16 = new Uint8Array(values.length * 2);
  encodeBF16(
    values.subarray(0, 5).map((v) => (v === 65504 ? 65536 : v)),
    bf16,
  );
  assert.deepEqual(Array.from(bf16.subarray(0, 4)), [0x80, 0x3f, 0x00, 0xc0]);
  assert.deepEqual(Array.from(decodeBF16(bf16.subarray(0, 10))), [1, -2, 0.5, 65536, 3.140625]);
  // An odd byte offset cannot be viewed as 16-bit words; the fallback path must agree.
  const shifted = new Uint8Array(f16.length + 1);
  shifted.set(f16, 1);
  assert.deepEqual(decodeF16(shifted.subarray(1)), values);
  assert.deepEqual(f16BitsToF32(f32ToF16Bits(1 + 2 ** -11)), 1);
  assert.equal(bf16BitsToF32(f32ToBF16Bits(1 + 3 * 2 ** -8)), 1 + 2 ** -6);
});

test("reads every supported dtype from a hand-built file, lazily and by name", () => {
  const dir = tmp();
  try {
    const parts: [string, string, number[], Uint8Array, number[]][] = [
      ["f64", "F64", [2], bytesOf(new Float64Array([1.5, -2])), [1.5, -2]],
      ["f32", "F32", [2, 1], bytesOf(new Float32Array([0.25, 3])), [0.25, 3]],
      ["f16", "F16", [3], bytesOf(new Uint16Array([0x3c00, 0xc000, 0x3800])), [1, -2, 0.5]],
      ["bf16", "BF16", [1], bytesOf(new Uint16Array([0x4049])), [3.140625]],
      ["i64", "I64", [2], bytesOf(new BigInt64Array([-5n, 7n])), [-5, 7]],
      ["i32", "I32", [1], bytesOf(new Int32Array([-100000])), [-100000]],
      ["i16", "I16", [1], bytesOf(new Int16Array([-300])), [-300]],
      ["i8", "I8", [2], bytesOf(new Int8Array([-1, 5])), [-1, 5]],
      ["u8", "U8", [2], Uint8Array.from([255, 0]), [255, 0]],
      ["bool", "BOOL", [3], Uint8Array.from([1, 0, 1]), [1, 0, 1]],
      ["scalar", "F32", [], bytesOf(new Float32Array([42])), [42]],
      ["empty", "F32", [0, 4], new Uint8Array(0), []],
    ];
    const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
    let off = 0;
    const chunks: Uint8Array[] = [];
    for (const [name, dtype, shape, b] of parts) {
      header[name] = { dtype, shape, data_offsets: [off, off + b.length] };
      chunks.push(b);
      off += b.length;
    }
    const data = new Uint8Array(off);
    off = 0;
    for (const c of chunks) {
      data.set(c, off);
      off += c.length;
    }
    const path = join(dir, "all.safetensors");
    writeFileSync(path, rawFile(header, data));
    const st = openSafetensors(path);
    try {
      assert.deepEqual(st.metadata, { format: "pt" });
      assert.equal(st.tensors.length, parts.length);
      for (const [name, dtype, shape, b, values] of parts) {
        const info = st.tensor(name);
        assert.ok(info, name);
        assert.equal(info.dtype, dtype);
        assert.deepEqual(info.shape, shape);
        assert.equal(info.byteLength, b.length);
        assert.deepEqual(st.readRaw(name), b, name);
        assert.deepEqual(Array.from(st.readF32(name)), values, name);
      }
      assert.equal(st.tensor("nope"), undefined);
      assert.throws(() => st.readF32("nope"), InputError);
    } finally {
      st.close();
    }
    assert.throws(() => st.readRaw("f32"), /closed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("rejects malformed headers with FileFormatError naming the problem", () => {
  const dir = tmp();
  const path = join(dir, "bad.safetensors");
  const f32 = (shape: number[], data_offsets: unknown) => ({ t: { dtype: "F32", shape, data_offsets } });
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(5), /too short/],
    [rawFile({}, new Uint8Array(0), { headerLen: 2n ** 64n - 1n }), /header length/],
    [rawFile({}, new Uint8Array(0), { headerLen: 3n }), /header length 3 is more than/],
    [rawFile({}, new Uint8Array(0), { text: '{"a":' }), /not valid JSON/],
    [rawFile({}, new Uint8Array(0), { text: "[]" }), /does not start with '\{'/],
    [rawFile({}, new Uint8Array(0), { text: `{"x":${"[".repeat(100)}${"]".repeat(100)}}` }), /nests deeper/],
    [rawFile(f32([2], [0, 8]), new Uint8Array(4)), /past the data section/],
    [rawFile(f32([3], [0, 8]), new Uint8Array(8)), /needs 12 bytes, but data_offsets span 8/],
    [rawFile(f32([2 ** 40, 2 ** 40], [0, 8]), new Uint8Array(8)), /more bytes than the file has/],
    [rawFile(f32([2 ** 53], [0, 8]), new Uint8Array(8)), /not a non-negative integer below 2\^53/],
    [rawFile(f32([-1], [0, 0]), new Uint8Array(0)), /not a non-negative integer/],
    [rawFile(f32([1], [4, 0]), new Uint8Array(8)), /begin 4 is after end 0/],
    [rawFile(f32([1], [-4, 0]), new Uint8Array(8)), /not non-negative integers/],
    [rawFile(f32([1], "0,4"), new Uint8Array(8)), /not a \[begin, end\] pair/],
    [
      rawFile({ t: { dtype: "F8_E4M3", shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
      /unsupported dtype "F8_E4M3"/,
    ],
    [
      rawFile({ t: { dtype: "Q4", shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
      /unknown dtype "Q4"/,
    ],
    [rawFile({ __metadata__: { n: 1 } }, new Uint8Array(0)), /__metadata__\."n" is number 1/],
    [
      rawFile(
        {
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        },
        new Uint8Array(12),
      ),
      /overlap/,
    ],
  ];
  try {
    assert.throws(
      () => openSafetensors(join(dir, "missing.safetensors")),
      (e: unknown) => e instanceof InputError && /no such file/.test(e.message),
    );
    assert.throws(() => openSafetensors(dir), /not a regular file/);
    for (const [bytes, re] of cases) {
      writeFileSync(path, bytes);
      assert.throws(
        () => openSafetensors(path),
        (e: unknown) => e instanceof FileFormatError && re.test(e.message) && e.message.includes(path),
        `expected ${re}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("writer round-trips F32/F16/BF16 with aligned, space-padded header and lazy data", () => {
  const dir = tmp();
  try {
    const path = join(dir, "w.safetensors");
    const a = Float32Array.from({ length: 12 }, (_, i) => i / 8 - 0.5);
    const c = Float32Array.from({ length: 5 }, (_, i) => i * 1.25);
    let lazyCalls = 0;
    writeSafetensors(
      path,
      [
        { name: "half", dtype: "F16", shape: [3, 4], data: a },
        { name: "brain", dtype: "BF16", shape: [5], data: c },
        {
          name: "full",
          dtype: "F32",
          shape: [5],
          data: () => {
            lazyCalls++;
            return c;
          },
        },
        { name: "raw", dtype: "F16", shape: [1], data: Uint8Array.from([0x00, 0x3c]) },
      ],
      { format: "pt" },
    );
    assert.equal(lazyCalls, 1);
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    assert.match(bytes.subarray(8, 8 + n).toString("utf8"), /^\{.*\} *$/);
    const st = openSafetensors(path);
    try {
      assert.deepEqual(st.metadata, { format: "pt" });
      assert.deepEqual(Array.from(st.readF32("half")), Array.from(a));
      assert.deepEqual(Array.from(st.readF32("brain")), Array.from(c));
      assert.deepEqual(Array.from(st.readF32("full")), Array.from(c));
      assert.deepEqual(Array.from(st.readF32("raw")), [1]);
      // F32 is laid out first so that every tensor starts on a multiple of its element size.
      assert.equal(st.tensors[0].name, "full");
      for (const t of st.tensors) assert.equal(t.byteOffset % (t.dtype === "F32" ? 4 : 2), 0, t.name);
    } finally {
      st.close();
    }
    assert.deepEqual(readdirSync(dir), ["w.safetensors"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("writer rejects bad input and leaves neither the target nor a temp file behind", () => {
  const dir = tmp();
  try {
    const path = join(dir, "w.safetensors");
    assert.throws(
      () => writeSafetensors(path, [{ name: "x", dtype: "F32", shape: [3], data: new Float32Array(2) }]),
      (e: unknown) => e instanceof InputError && /3 elements but 2 values/.test(e.message),
    );
    assert.throws(
      () =>
        writeSafetensors(path, [
          { name: "x", dtype: "F32", shape: [1], data: new Float32Array(1) },
          { name: "x", dtype: "F32", shape: [1], data: new Float32Array(1) },
        ]),
      /given twice/,
    );
    assert.throws(
      () => writeSafetensors(path, [{ name: "x", dtype: "F32", shape: [-1], data: new Float32Array(0) }]),
      /bad shape/,
    );
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sharded index presents all shards as one set and checks the weight map", () => {
  const dir = tmp();
  try {
    writeSafetensors(join(dir, "model-00001-of-00002.safetensors"), [
      { name: "a", dtype: "F32", shape: [2], data: Float32Array.from([1, 2]) },
    ]);
    writeSafetensors(join(dir, "model-00002-of-00002.safetensors"), [
      { name: "b", dtype: "BF16", shape: [1], data: Float32Array.from([3]) },
      { name: "unlisted", dtype: "F32", shape: [1], data: Float32Array.from([9]) },
    ]);
    const index = {
      metadata: { total_size: 10 },
      weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" },
    };
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify(index));
    const set = openSafetensorsIndex(dir);
    try {
      assert.deepEqual(set.metadata, { total_size: "10" });
      assert.deepEqual(set.tensors.map((t) => t.name).sort(), ["a", "b"]);
      assert.deepEqual(Array.from(set.readF32("a")), [1, 2]);
      assert.deepEqual(Array.from(set.readF32("b")), [3]);
      assert.match(set.tensor("b")?.file ?? "", /00002/);
      assert.throws(() => set.readRaw("unlisted"), InputError);
    } finally {
      set.close();
    }
    const indexPath = join(dir, "model.safetensors.index.json");
    writeFileSync(indexPath, JSON.stringify({ weight_map: { a: "../etc/passwd" } }));
    assert.throws(() => openSafetensorsIndex(indexPath), /not a file name in this directory/);
    writeFileSync(indexPath, JSON.stringify({ weight_map: { c: "model-00001-of-00002.safetensors" } }));
    assert.throws(() => openSafetensorsIndex(indexPath), /"c" is listed .* but not in this shard/);
    writeFileSync(indexPath, JSON.stringify({ weight_map: { a: "model-00009-of-00009.safetensors" } }));
    assert.throws(
      () => openSafetensorsIndex(indexPath),
      /shard model-00009-of-00009.safetensors .* is missing/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
