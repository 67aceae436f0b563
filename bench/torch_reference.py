#!/usr/bin/env python3
"""Independent PyTorch reference for buckle's engine: loss, LoRA gradients and logits of one batch.

Builds a llama / qwen2 decoder in float64 from a Hugging Face checkpoint directory (config.json +
model.safetensors), applies a PEFT LoRA adapter directory (adapter_config.json +
adapter_model.safetensors) the way PEFT does, computes the mean cross-entropy over the masked
targets of a batch and backpropagates into every lora_A / lora_B matrix.

Only PyTorch is needed: safetensors files are parsed here from their documented layout, and the
model follows transformers' modeling_llama.py / modeling_qwen2.py written out in plain torch.

Usage:
    /usr/bin/python3 bench/torch_reference.py --model HF_DIR --adapter PEFT_DIR --batch batch.json \
        [--out result.json] [--compact] [--rope-angles hf|float64|ggml]

batch.json: {"ids": [[int, ...], ...], "masks": [[0|1, ...], ...]}; masks[k][t] = 1 makes ids[k][t] a
target, predicted from ids[k][:t] (masks[k][0] is ignored). Each sequence starts at position 0.

Output JSON: loss (mean over targets), loss_sum, count, grads {PEFT tensor name: array}, logits
(first sequence, [T, vocab]) and meta. An array is {"shape": [...], "data": [...]} with row-major
values, or with --compact {"shape", "encoding": "base64-f64le", "data": "<base64>"}.

This is a developer tool (see docs/TORCH-REFERENCE.md), not a test dependency.
"""

import argparse
import base64
import json
import math
import os
import re
import struct
import sys

import torch

DT = torch.float64

# ----------------------------------------------------------------------------------------------
# safetensors: u64 little-endian header length N, N bytes of JSON header
# {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data
# buffer; offsets are relative to the start of the buffer (byte 8 + N).

_ST_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path):
    """Every tensor of a .safetensors file as float64 torch tensors, by name."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    buf = bytearray(raw)  # torch.frombuffer wants a writable buffer
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _ST_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: {name} has unsupported dtype {info['dtype']}")
        shape = [int(d) for d in info["shape"]]
        begin, end = (int(x) for x in info["data_offsets"])
        count = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if end - begin != count * itemsize or base + end > len(raw):
            raise ValueError(f"{path}: {name} data_offsets {begin}..{end} do not fit shape {shape}")
        if count == 0:
            t = torch.zeros(shape, dtype=dtype)
        else:
            t = torch.frombuffer(buf, dtype=dtype, count=count, offset=base + begin).reshape(shape)
        if sys.byteorder != "little" and t.element_size() > 1:
            raise ValueError("big-endian hosts are not supported")
        out[name] = t.to(DT, copy=True)
    return out


# ----------------------------------------------------------------------------------------------
# config.json


class Config:
    def __init__(self, c):
        self.model_type = c.get("model_type")
        if self.model_type not in ("llama", "qwen2", "mistral"):
            raise ValueError(f"model_type {self.model_type!r}: only llama, qwen2, mistral")
        self.vocab_size = int(c["vocab_size"])
        self.hidden_size = int(c["hidden_size"])
        self.intermediate_size = int(c["intermediate_size"])
        self.num_layers = int(c["num_hidden_layers"])
        self.num_heads = int(c["num_attention_heads"])
        self.num_kv_heads = int(c.get("num_key_value_heads") or self.num_heads)
        self.head_dim = int(c.get("head_dim") or self.hidden_size // self.num_heads)
        self.rms_norm_eps = float(c["rms_norm_eps"])
        rp = c.get("rope_parameters") or {}
        self.rope_theta = float(c.get("rope_theta") or rp.get("rope_theta") or 10000.0)
        scaling = c.get("rope_scaling")
        if scaling is None and rp.get("rope_type", "default") != "default":
            scaling = rp
        self.rope_scaling = scaling
        self.tie = bool(c.get("tie_word_embeddings", False))
        if self.model_type == "qwen2":
            self.attention_bias = True
        elif self.model_type == "llama":
            self.attention_bias = bool(c.get("attention_bias", False))
        else:
            self.attention_bias = False
        if c.get("mlp_bias"):
            raise ValueError("mlp_bias is not supported")
        if c.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {c.get('hidden_act')!r}: only silu")


# ----------------------------------------------------------------------------------------------
# Rotary embedding, as transformers' LlamaRotaryEmbedding / ROPE_INIT_FUNCTIONS.


def inv_freq_of(cfg, dtype):
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).to(dtype) / d))
    s = cfg.rope_scaling
    kind = None if s is None else (s.get("rope_type") or s.get("type"))
    if kind in (None, "default"):
        return inv_freq
    factor = float(s["factor"])
    if kind == "linear":
        return inv_freq / factor
    if kind == "llama3":
        low = float(s["low_freq_factor"])
        high = float(s["high_freq_factor"])
        old_ctx = float(s["original_max_position_embeddings"])
        low_wavelen = old_ctx / low
        high_wavelen = old_ctx / high
        wavelen = 2 * math.pi / inv_freq
        inv_freq_llama = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old_ctx / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * inv_freq_llama / factor + smooth * inv_freq_llama
        is_medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        return torch.where(is_medium, smoothed, inv_freq_llama)
    raise ValueError(f"rope scaling {kind!r} is not supported by this reference")


def ggml_angles(cfg, length):
    """Angles [length, head_dim / 2] as llama.cpp's rope (and buckle's RopeTable) compute them: float32
    theta_i = p * theta_scale^i by repeated multiplication, divided by the llama3 frequency factor and
    multiplied by the linear frequency scale, each step rounded to float32."""
    f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]  # noqa: E731
    d = cfg.head_dim
    half = d // 2
    theta_scale = f32(math.pow(cfg.rope_theta, f32(-2 / d)))
    s = cfg.rope_scaling
    kind = None if s is None else (s.get("rope_type") or s.get("type"))
    freq_scale = f32(1 / float(s["factor"])) if kind == "linear" else 1.0
    factors = [1.0] * half
    if kind == "llama3":
        factor = float(s["factor"])
        low = float(s["low_freq_factor"])
        high = float(s["high_freq_factor"])
        old_ctx = float(s["original_max_position_embeddings"])
        for i in range(half):
            wavelen = 2 * math.pi / (1 / math.pow(cfg.rope_theta, 2 * i / d))
            if wavelen < old_ctx / high:
                factors[i] = 1.0
            elif wavelen > old_ctx / low:
                factors[i] = factor
            else:
                smooth = (old_ctx / wavelen - low) / (high - low)
                factors[i] = f32(1 / ((1 - smooth) / factor + smooth))
    elif kind not in (None, "default", "linear"):
        raise ValueError(f"rope scaling {kind!r} is not supported by this reference")
    out = []
    for p in range(length):
        theta = float(p)
        row = []
        for i in range(half):
            row.append(f32(freq_scale * f32(theta / factors[i])))
            theta = f32(theta * theta_scale)
        out.append(row)
    return torch.tensor(out, dtype=DT)


def rope_cos_sin(cfg, length, angles):
    """cos, sin [length, head_dim] for rotate_half. angles="hf": float32 angles as transformers computes
    them (inv_freq and position x inv_freq in float32); "float64": exact angles; "ggml": llama.cpp's
    float32 angle recurrence with cos/sin rounded to float32, i.e. buckle's own rope table."""
    if angles == "ggml":
        freqs = ggml_angles(cfg, length)
        c = freqs.cos().to(torch.float32).to(DT)
        s = freqs.sin().to(torch.float32).to(DT)
        return torch.cat((c, c), dim=-1), torch.cat((s, s), dim=-1)
    adt = torch.float32 if angles == "hf" else DT
    inv_freq = inv_freq_of(cfg, adt)
    pos = torch.arange(length, dtype=torch.int64).to(adt)
    freqs = pos[:, None] @ inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(DT), emb.sin().to(DT)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, cos, sin):
    # x [heads, T, head_dim]
    return x * cos + rotate_half(x) * sin


# ----------------------------------------------------------------------------------------------
# The decoder.


class Adapter:
    def __init__(self, adapter_dir):
        with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
            self.config = json.load(f)
        c = self.config
        if c.get("peft_type", "LORA") != "LORA":
            raise ValueError(f"peft_type {c.get('peft_type')!r}: only LORA")
        if c.get("fan_in_fan_out") or c.get("use_dora"):
            raise ValueError("fan_in_fan_out / use_dora adapters are not supported")
        if c.get("rank_pattern") or c.get("alpha_pattern"):
            raise ValueError("rank_pattern / alpha_pattern are not supported")
        r = int(c["r"])
        alpha = float(c["lora_alpha"])
        self.scaling = alpha / math.sqrt(r) if c.get("use_rslora") else alpha / r
        self.dropout = float(c.get("lora_dropout", 0.0))
        tensors = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
        pat = re.compile(
            r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)(?:\.default)?\.weight$"
        )
        self.params = {}  # (layer, module) -> {"A": tensor, "B": tensor}
        self.names = {}  # (layer, module, "A"|"B") -> tensor name in the file
        for name, t in tensors.items():
            m = pat.match(name)
            if not m:
                raise ValueError(f"unexpected adapter tensor {name}")
            key = (int(m.group(1)), m.group(3))
            p = t.clone().requires_grad_(True)
            self.params.setdefault(key, {})[m.group(4)] = p
            self.names[key + (m.group(4),)] = name
        for key, ab in self.params.items():
            if set(ab) != {"A", "B"}:
                raise ValueError(f"layer {key[0]} {key[1]}: needs both lora_A and lora_B")

    def linear(self, layer, module, x, weight, bias=None):
        """PEFT's lora.Linear.forward with dropout off: base(x) + lora_B(lora_A(x)) * scaling."""
        y = x @ weight.T
        if bias is not None:
            y = y + bias
        ab = self.params.get((layer, module))
        if ab is not None:
            y = y + ((x @ ab["A"].T) @ ab["B"].T) * self.scaling
        return y


class Model:
    def __init__(self, model_dir, rope_angles):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = Config(json.load(f))
        self.w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.rope_angles = rope_angles
        cfg = self.cfg
        emb = self.w["model.embed_tokens.weight"]
        if tuple(emb.shape) != (cfg.vocab_size, cfg.hidden_size):
            raise ValueError(f"embed_tokens is {list(emb.shape)}, config implies [{cfg.vocab_size}, {cfg.hidden_size}]")
        # Tied checkpoints store no lm_head.weight; the head is the embedding matrix.
        self.lm_head = emb if cfg.tie else self.w["lm_head.weight"]

    def rms_norm(self, x, weight):
        # LlamaRMSNorm / Qwen2RMSNorm (without their float32 round trip: everything stays float64)
        variance = x.pow(2).mean(-1, keepdim=True)
        return weight * (x * torch.rsqrt(variance + self.cfg.rms_norm_eps))

    def attention(self, i, x, lora, cos, sin):
        cfg = self.cfg
        p = f"model.layers.{i}.self_attn."
        T = x.shape[0]
        nh, nkv, hd = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        bias = (lambda n: self.w[p + n + ".bias"]) if cfg.attention_bias else (lambda n: None)
        q = lora.linear(i, "q_proj", x, self.w[p + "q_proj.weight"], bias("q_proj"))
        k = lora.linear(i, "k_proj", x, self.w[p + "k_proj.weight"], bias("k_proj"))
        v = lora.linear(i, "v_proj", x, self.w[p + "v_proj.weight"], bias("v_proj"))
        q = q.view(T, nh, hd).transpose(0, 1)  # [nh, T, hd]
        k = k.view(T, nkv, hd).transpose(0, 1)
        v = v.view(T, nkv, hd).transpose(0, 1)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        # repeat_kv: query head h reads key/value head h // (nh / nkv)
        n_rep = nh // nkv
        k = k[:, None].expand(nkv, n_rep, T, hd).reshape(nh, T, hd)
        v = v[:, None].expand(nkv, n_rep, T, hd).reshape(nh, T, hd)
        scores = (q @ k.transpose(1, 2)) * (hd**-0.5)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(causal, float("-inf"))
        probs = torch.softmax(scores, dim=-1)  # float64 (transformers' eager path upcasts to float32)
        out = (probs @ v).transpose(0, 1).reshape(T, nh * hd)
        return lora.linear(i, "o_proj", out, self.w[p + "o_proj.weight"])

    def mlp(self, i, x, lora):
        p = f"model.layers.{i}.mlp."
        gate = lora.linear(i, "gate_proj", x, self.w[p + "gate_proj.weight"])
        up = lora.linear(i, "up_proj", x, self.w[p + "up_proj.weight"])
        return lora.linear(i, "down_proj", torch.nn.functional.silu(gate) * up, self.w[p + "down_proj.weight"])

    def logits(self, ids, lora):
        """Logits [T, vocab] of one sequence starting at position 0."""
        cfg = self.cfg
        T = len(ids)
        cos, sin = rope_cos_sin(cfg, T, self.rope_angles)
        h = self.w["model.embed_tokens.weight"][torch.tensor(ids, dtype=torch.int64)]
        for i in range(cfg.num_layers):
            p = f"model.layers.{i}."
            h = h + self.attention(i, self.rms_norm(h, self.w[p + "input_layernorm.weight"]), lora, cos, sin)
            h = h + self.mlp(i, self.rms_norm(h, self.w[p + "post_attention_layernorm.weight"]), lora)
        h = self.rms_norm(h, self.w["model.norm.weight"])
        return h @ self.lm_head.T


# ----------------------------------------------------------------------------------------------


def encode(t, compact):
    """{"shape", "data"}: a flat list, or with compact base64 of little-endian float64."""
    t = t.detach().to(DT).contiguous()
    if not compact:
        return {"shape": list(t.shape), "data": t.reshape(-1).tolist()}
    try:
        raw = t.numpy().astype("<f8").tobytes()
    except (ImportError, RuntimeError):  # torch without numpy
        flat = t.reshape(-1).tolist()
        raw = struct.pack(f"<{len(flat)}d", *flat)
    return {"shape": list(t.shape), "encoding": "base64-f64le", "data": base64.b64encode(raw).decode("ascii")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="Hugging Face checkpoint directory")
    ap.add_argument("--adapter", required=True, help="PEFT LoRA adapter directory")
    ap.add_argument("--batch", required=True, help='JSON {"ids": [[...]], "masks": [[...]]}')
    ap.add_argument("--out", help="where to write the result JSON (default: stdout)")
    ap.add_argument("--compact", action="store_true", help="arrays as base64 little-endian float64")
    ap.add_argument(
        "--rope-angles",
        choices=["hf", "float64", "ggml"],
        default="hf",
        help="hf: float32 rotary angles as transformers computes them (default); float64: exact angles; "
        "ggml: llama.cpp's float32 angle recurrence and float32 cos/sin (buckle's table, to isolate it)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    model = Model(args.model, args.rope_angles)
    lora = Adapter(args.adapter)
    if lora.dropout != 0:
        print(f"note: lora_dropout {lora.dropout} is ignored (dropout off for the check)", file=sys.stderr)
    with open(args.batch) as f:
        batch = json.load(f)
    seqs, masks = batch["ids"], batch["masks"]
    if len(seqs) != len(masks) or not seqs:
        raise ValueError("batch needs as many masks as sequences, and at least one")

    loss_sum = torch.zeros((), dtype=DT)
    count = 0
    first_logits = None
    for k, (ids, mask) in enumerate(zip(seqs, masks)):
        if len(ids) != len(mask):
            raise ValueError(f"sequence {k}: {len(mask)} mask entries for {len(ids)} tokens")
        logits = model.logits(ids, lora)
        if k == 0:
            first_logits = logits.detach().clone()
        # transformers' causal-LM loss: labels = ids with non-targets at -100, shifted by one.
        labels = torch.tensor([t if m else -100 for t, m in zip(ids, mask)], dtype=torch.int64)
        labels[0] = -100
        shift_labels = labels[1:]
        count += int((shift_labels != -100).sum())
        loss_sum = loss_sum + torch.nn.functional.cross_entropy(
            logits[:-1], shift_labels, ignore_index=-100, reduction="sum"
        )
    if count == 0:
        raise ValueError("the batch has no target tokens")
    loss = loss_sum / count
    loss.backward()

    grads = {}
    for (layer, module), ab in sorted(lora.params.items()):
        for which in ("A", "B"):
            g = ab[which].grad
            if g is None:
                g = torch.zeros_like(ab[which])
            grads[lora.names[(layer, module, which)]] = encode(g, args.compact)

    result = {
        "loss": loss.item(),
        "loss_sum": loss_sum.item(),
        "count": count,
        "grads": grads,
        "logits": encode(first_logits, args.compact),
        "meta": {
            "torch": torch.__version__,
            "dtype": "float64",
            "model_type": model.cfg.model_type,
            "rope_angles": args.rope_angles,
            "lora_scaling": lora.scaling,
        },
    }
    text = json.dumps(result)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
