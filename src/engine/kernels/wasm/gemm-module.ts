// Emits the WebAssembly SIMD GEMM kernels (bytes, built at run time by ./builder.ts).
//
// Exported functions (all addresses and strides in BYTES, i32, into the shared memory):
//   block(ap, bp, npanels, lastCols, kc, c, ldc, mrows, accum)
//       C[i][j] (+)= sum_t Ap[t][i] * Bp[t][j]  for i < mrows, j < (npanels-1)*NR + lastCols
//       Ap = packed A tiles: tile q holds [kc][MR] f32 at ap + q*kc*MR*4 (from packA);
//       Bp = packed B panels: panel p holds [kc][NR] f32 at bp + p*kc*NR*4;
//       C row i at c + i*ldc; accum != 0 adds into C, else overwrites.
//   packA(a, ars, aks, mrows, kc, dst)
//       MR-row tiles of A(i,t) = f32 at a + i*ars + t*aks, t < kc, zero-padded past mrows.
//   pack_<type>_<mode>(src, ld, j0, ncols, t0, kc, dst)
//       fills NR-wide panels (zero-padded past ncols) with B(t0+t, j0+jj), t < kc, jj < ncols, where
//       mode "nk": B(t, j) = S[j][t]  (S row-major, row stride ld bytes: a weight W[N][K] seen as Wᵀ)
//       mode "kn": B(t, j) = S[t][j]  (S row-major, row stride ld bytes)
//       type f32 | f16 | bf16 | q8_0 (q8_0 rows are ggml blocks of 34 bytes per 32 values; ld = row bytes).
//   block1, packA1: block and packA with 1-row tiles, for products of fewer than MR rows (decoding). Every output
//       element is the same FMA chain as in block (lane j of the same panel), so results are bit-identical.
import { encodeModule, Fn, I32, V128 } from "./builder.js";

export const NR = 8; // columns per packed panel (2 x f32x4)
// k-loop unroll (log2): 1 and 2 measured ~40% slower in V8 11.3 (TurboFan spills the extra live vectors)
const UNROLL_LOG = 0;
const UNROLL = 1 << UNROLL_LOG;

export type PackType = "f32" | "f16" | "bf16" | "q8_0";
export type PackMode = "nk" | "kn";

function emitBlock(relaxed: boolean, MR: number, name = "block"): Fn {
  const f = new Fn(name, [I32, I32, I32, I32, I32, I32, I32, I32, I32], []);
  const [ap, bp, npanels, lastCols, kc, c, ldc, mrows, accum] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const NV = NR / 4;
  const i = f.local(I32);
  const apTile = f.local(I32);
  const p = f.local(I32);
  const bpp = f.local(I32);
  const cc = f.local(I32);
  const ncols = f.local(I32);
  const nrows = f.local(I32);
  const kk = f.local(I32);
  const aq = f.local(I32);
  const bq = f.local(I32);
  const panelBytes = f.local(I32);
  const tileBytes = f.local(I32);
  const cr = f.local(I32);
  const acc: number[][] = [];
  for (let r = 0; r < MR; r++) {
    acc.push([]);
    for (let j = 0; j < NV; j++) acc[r].push(f.local(V128));
  }
  const bv: number[] = [];
  for (let j = 0; j < NV; j++) bv.push(f.local(V128));
  const av = f.local(V128);

  const rowAddr = (r: number): void => {
    f.get(cc);
    if (r > 0) f.get(ldc).i32(r).i32Mul().i32Add();
    f.set(cr);
  };
  const tile = (): void => {
    for (let r = 0; r < MR; r++) for (let j = 0; j < NV; j++) f.f32(0).f32x4Splat().set(acc[r][j]);
    f.get(apTile).set(aq);
    f.get(bpp).set(bq);
    const kstep = (u: number): void => {
      for (let j = 0; j < NV; j++)
        f.get(bq)
          .v128Load(16 * j + u * NR * 4)
          .set(bv[j]);
      for (let r = 0; r < MR; r++) {
        f.get(aq)
          .v128Load32Splat(4 * r + u * MR * 4)
          .set(av);
        for (let j = 0; j < NV; j++) {
          if (relaxed) f.get(av).get(bv[j]).get(acc[r][j]).f32x4RelaxedMadd().set(acc[r][j]);
          else f.get(av).get(bv[j]).f32x4Mul().get(acc[r][j]).f32x4Add().set(acc[r][j]);
        }
      }
    };
    // kk = kc / UNROLL full steps, then the remainder one at a time
    f.get(kc).i32(UNROLL_LOG).i32ShrU().tee(kk).if_();
    f.loop();
    for (let u = 0; u < UNROLL; u++) kstep(u);
    f.get(aq)
      .i32(UNROLL * MR * 4)
      .i32Add()
      .set(aq);
    f.get(bq)
      .i32(UNROLL * NR * 4)
      .i32Add()
      .set(bq);
    f.get(kk).i32(1).i32Sub().tee(kk).brIf(0);
    f.end();
    f.end();
    f.get(kc)
      .i32(UNROLL - 1)
      .i32And()
      .tee(kk)
      .if_();
    f.loop();
    kstep(0);
    f.get(aq)
      .i32(MR * 4)
      .i32Add()
      .set(aq);
    f.get(bq)
      .i32(NR * 4)
      .i32Add()
      .set(bq);
    f.get(kk).i32(1).i32Sub().tee(kk).brIf(0);
    f.end();
    f.end();
    // store: full tile fast path
    f.get(ncols).i32(NR).i32Eq().get(nrows).i32(MR).i32Eq().i32And().if_();
    for (let r = 0; r < MR; r++) {
      rowAddr(r);
      for (let j = 0; j < NV; j++) {
        f.get(accum).if_();
        f.get(cr)
          .get(cr)
          .v128Load(16 * j)
          .get(acc[r][j])
          .f32x4Add()
          .v128Store(16 * j);
        f.else_();
        f.get(cr)
          .get(acc[r][j])
          .v128Store(16 * j);
        f.end();
      }
    }
    f.else_();
    for (let r = 0; r < MR; r++) {
      f.get(nrows).i32(r).i32GtS().if_();
      rowAddr(r);
      for (let col = 0; col < NR; col++) {
        const j = col >> 2;
        const l = col & 3;
        f.get(ncols).i32(col).i32GtS().if_();
        f.get(accum).if_();
        f.get(cr)
          .get(acc[r][j])
          .f32x4ExtractLane(l)
          .get(cr)
          .f32Load(4 * col)
          .f32Add()
          .f32Store(4 * col);
        f.else_();
        f.get(cr)
          .get(acc[r][j])
          .f32x4ExtractLane(l)
          .f32Store(4 * col);
        f.end();
        f.end();
      }
      f.end();
    }
    f.end();
  };

  f.get(kc)
    .i32(NR * 4)
    .i32Mul()
    .set(panelBytes);
  f.get(kc)
    .i32(MR * 4)
    .i32Mul()
    .set(tileBytes);
  f.i32(0).set(i);
  f.get(ap).set(apTile);
  f.block();
  f.loop();
  f.get(i).get(mrows).i32GeS().brIf(1);
  f.get(mrows).get(i).i32Sub().tee(nrows).i32(MR).get(nrows).i32(MR).i32LtS().select().set(nrows);
  f.i32(0).set(p);
  f.get(bp).set(bpp);
  f.get(c).get(i).get(ldc).i32Mul().i32Add().set(cc);
  f.loop();
  f.get(lastCols).i32(NR).get(p).get(npanels).i32(1).i32Sub().i32Eq().select().set(ncols);
  tile();
  f.get(bpp).get(panelBytes).i32Add().set(bpp);
  f.get(cc)
    .i32(NR * 4)
    .i32Add()
    .set(cc);
  f.get(p).i32(1).i32Add().tee(p).get(npanels).i32LtS().brIf(0);
  f.end();
  f.get(apTile).get(tileBytes).i32Add().set(apTile);
  f.get(i).i32(MR).i32Add().set(i);
  f.br(0);
  f.end();
  f.end();
  return f;
}

/** packA(a, ars, aks, mrows, kc, dst): MR-row tiles [t][MR] of A(i,t) = f32 at a + i*ars + t*aks, zero-padded. */
function emitPackA(MR: number, name = "packA"): Fn {
  const f = new Fn(name, [I32, I32, I32, I32, I32, I32], []);
  const [a, ars, aks, mrows, kc, dst] = [0, 1, 2, 3, 4, 5];
  const i = f.local(I32);
  const t = f.local(I32);
  const r = f.local(I32);
  const src = f.local(I32);
  const out = f.local(I32);
  const tileBase = f.local(I32);
  f.get(dst).set(tileBase);
  f.i32(0).set(i);
  f.block().loop();
  f.get(i).get(mrows).i32GeS().brIf(1);
  f.i32(0).set(r);
  f.block().loop();
  f.get(r).i32(MR).i32GeS().brIf(1);
  f.get(tileBase).get(r).i32(2).i32Shl().i32Add().set(out);
  f.i32(0).set(t);
  f.get(i).get(r).i32Add().get(mrows).i32LtS().if_();
  f.get(a).get(i).get(r).i32Add().get(ars).i32Mul().i32Add().set(src);
  f.block().loop();
  f.get(t).get(kc).i32GeS().brIf(1);
  f.get(out).get(src).f32Load().f32Store();
  f.get(src).get(aks).i32Add().set(src);
  f.get(out)
    .i32(MR * 4)
    .i32Add()
    .set(out);
  f.get(t).i32(1).i32Add().set(t);
  f.br(0);
  f.end().end();
  f.else_();
  f.block().loop();
  f.get(t).get(kc).i32GeS().brIf(1);
  f.get(out).f32(0).f32Store();
  f.get(out)
    .i32(MR * 4)
    .i32Add()
    .set(out);
  f.get(t).i32(1).i32Add().set(t);
  f.br(0);
  f.end().end();
  f.end();
  f.get(r).i32(1).i32Add().set(r);
  f.br(0);
  f.end().end();
  f.get(tileBase)
    .get(kc)
    .i32(MR * 4)
    .i32Mul()
    .i32Add()
    .set(tileBase);
  f.get(i).i32(MR).i32Add().set(i);
  f.br(0);
  f.end().end();
  return f;
}

/** Emits code leaving the f32 value of the f16 bits in local h on the stack. */
function emitF16ToF32(f: Fn, h: number, tmp: number): void {
  f.get(h).i32(0x7fff).i32And().i32(13).i32Shl().set(tmp);
  f.get(tmp).i32(0x7f800000).i32Or(); // inf / nan
  f.get(tmp)
    .f32ReinterpretI32()
    .f32(2 ** 112)
    .f32Mul()
    .i32ReinterpretF32(); // normal and subnormal, exact
  f.get(h).i32(0x7c00).i32And().i32(0x7c00).i32Eq();
  f.select();
  f.get(h).i32(0x8000).i32And().i32(16).i32Shl().i32Or();
  f.f32ReinterpretI32();
}

/** Emits code pushing element idx (local) of the row starting at byte address rowPtr (local), as f32. */
function emitElem(
  f: Fn,
  type: PackType,
  rowPtr: number,
  idx: number,
  h: number,
  tmp: number,
  blk: number,
): void {
  switch (type) {
    case "f32":
      f.get(rowPtr).get(idx).i32(2).i32Shl().i32Add().f32Load();
      return;
    case "bf16":
      f.get(rowPtr).get(idx).i32(1).i32Shl().i32Add().i32Load16U().i32(16).i32Shl().f32ReinterpretI32();
      return;
    case "f16":
      f.get(rowPtr).get(idx).i32(1).i32Shl().i32Add().i32Load16U().set(h);
      emitF16ToF32(f, h, tmp);
      return;
    case "q8_0":
      f.get(rowPtr).get(idx).i32(5).i32ShrU().i32(34).i32Mul().i32Add().set(blk);
      f.get(blk).i32Load16U().set(h);
      emitF16ToF32(f, h, tmp);
      f.get(blk).get(idx).i32(31).i32And().i32Add().i32Load8S(2).f32ConvertI32S().f32Mul();
      return;
  }
}

function emitPack(type: PackType, mode: PackMode): Fn {
  const f = new Fn(`pack_${type}_${mode}`, [I32, I32, I32, I32, I32, I32, I32], []);
  const [src, ld, j0, ncols, t0, kc, dst] = [0, 1, 2, 3, 4, 5, 6];
  const npad = f.local(I32); // ncols rounded up to NR
  const jj = f.local(I32);
  const t = f.local(I32);
  const rowPtr = f.local(I32);
  const idx = f.local(I32);
  const out = f.local(I32);
  const h = f.local(I32);
  const tmp = f.local(I32);
  const blk = f.local(I32);
  const panelStride = f.local(I32);
  f.get(ncols)
    .i32(NR - 1)
    .i32Add()
    .i32(-NR)
    .i32And()
    .set(npad);
  f.get(kc)
    .i32(NR * 4)
    .i32Mul()
    .set(panelStride);
  // out address of (jj, t): dst + (jj >> 3) * panelStride + t * NR*4 + (jj & 7) * 4
  const outAddr = (): void => {
    f.get(dst).get(jj).i32(3).i32ShrU().get(panelStride).i32Mul().i32Add();
    f.get(t)
      .i32(NR * 4)
      .i32Mul()
      .i32Add()
      .get(jj)
      .i32(7)
      .i32And()
      .i32(2)
      .i32Shl()
      .i32Add()
      .set(out);
  };
  if (mode === "nk") {
    // for jj < npad: for t < kc
    f.i32(0).set(jj);
    f.block().loop();
    f.get(jj).get(npad).i32GeS().brIf(1);
    f.get(src).get(j0).get(jj).i32Add().get(ld).i32Mul().i32Add().set(rowPtr);
    f.i32(0).set(t);
    f.block().loop();
    f.get(t).get(kc).i32GeS().brIf(1);
    outAddr();
    f.get(jj).get(ncols).i32LtS().if_();
    f.get(t0).get(t).i32Add().set(idx);
    f.get(out);
    emitElem(f, type, rowPtr, idx, h, tmp, blk);
    f.f32Store();
    f.else_();
    f.get(out).f32(0).f32Store();
    f.end();
    f.get(t).i32(1).i32Add().set(t);
    f.br(0);
    f.end().end();
    f.get(jj).i32(1).i32Add().set(jj);
    f.br(0);
    f.end().end();
  } else {
    // for t < kc: for jj < npad
    f.i32(0).set(t);
    f.block().loop();
    f.get(t).get(kc).i32GeS().brIf(1);
    f.get(src).get(t0).get(t).i32Add().get(ld).i32Mul().i32Add().set(rowPtr);
    f.i32(0).set(jj);
    f.block().loop();
    f.get(jj).get(npad).i32GeS().brIf(1);
    outAddr();
    f.get(jj).get(ncols).i32LtS().if_();
    f.get(j0).get(jj).i32Add().set(idx);
    f.get(out);
    emitElem(f, type, rowPtr, idx, h, tmp, blk);
    f.f32Store();
    f.else_();
    f.get(out).f32(0).f32Store();
    f.end();
    f.get(jj).i32(1).i32Add().set(jj);
    f.br(0);
    f.end().end();
    f.get(t).i32(1).i32Add().set(t);
    f.br(0);
    f.end().end();
  }
  return f;
}

export const PACK_TYPES: PackType[] = ["f32", "f16", "bf16", "q8_0"];

/** The kernel module's bytes; memory is imported as env.memory (shared, pages minPages..maxPages). */
export function gemmModuleBytes(
  relaxed: boolean,
  mr: number,
  minPages: number,
  maxPages: number,
): Uint8Array<ArrayBuffer> {
  const fns: Fn[] = [emitBlock(relaxed, mr), emitPackA(mr)];
  for (const t of PACK_TYPES) for (const m of ["nk", "kn"] as PackMode[]) fns.push(emitPack(t, m));
  // 1-row variants for products with fewer than MR rows (decoding): same per-element FMA chain, no padded rows
  fns.push(emitBlock(relaxed, 1, "block1"), emitPackA(1, "packA1"));
  return encodeModule(fns, minPages, maxPages);
}
