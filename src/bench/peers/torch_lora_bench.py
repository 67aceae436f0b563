#!/usr/bin/env python3
"""PyTorch peer of buckle's engine benchmark (src/bench/engine.ts): the SmolLM2-135M shape (llama, hidden 576,
ffn 1536, 30 layers, 9 heads, 3 kv heads, vocab 49152, tied embeddings), random f32 weights, LoRA on all seven
projections, AdamW; times training steps and a no-grad scoring forward. Prints one JSON object on stdout.

Written for this benchmark (plain torch, no transformers/peft): the model is a straightforward llama block with
LoRA as PEFT defines it: y = x W^T + (alpha/r) * (x A^T) B^T.
Usage: python3 torch_lora_bench.py '{"threads":2,"batch":4,"seq":256,"steps":4,"warmup":2,"rank":16,"alpha":32}'
(the first `warmup` steps are not timed).
"""
import json
import math
import resource
import sys
import time

cfg = {
    "hidden": 576, "ffn": 1536, "layers": 30, "heads": 9, "kv_heads": 3, "vocab": 49152,
    "threads": 2, "batch": 4, "seq": 256, "steps": 3, "rank": 16, "alpha": 32, "lr": 1e-4,
    "score_reps": 2, "warmup": 1, "seed": 1, "rope_theta": 10000.0, "eps": 1e-5,
}
if len(sys.argv) > 1:
    cfg.update(json.loads(sys.argv[1]))

try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001
    print(json.dumps({"skipped": f"torch is not importable: {e}"}))
    sys.exit(0)

torch.set_num_threads(cfg["threads"])
torch.manual_seed(cfg["seed"])
H, FF, L, NH, NKV, V = cfg["hidden"], cfg["ffn"], cfg["layers"], cfg["heads"], cfg["kv_heads"], cfg["vocab"]
HD = H // NH
R, SCALE = cfg["rank"], cfg["alpha"] / cfg["rank"]


class LoraLinear(torch.nn.Module):
    def __init__(self, inp, out):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(out, inp) * 0.02, requires_grad=False)
        self.a = torch.nn.Parameter(torch.empty(R, inp).uniform_(-1 / math.sqrt(inp), 1 / math.sqrt(inp)))
        self.b = torch.nn.Parameter(torch.zeros(out, R))

    def forward(self, x):
        return F.linear(x, self.weight) + F.linear(F.linear(x, self.a), self.b) * SCALE


class RMSNorm(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim), requires_grad=False)

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg["eps"]) * self.weight


def rope(x, cos, sin):  # x [B, heads, T, HD], rotate_half form
    x1, x2 = x[..., : HD // 2], x[..., HD // 2 :]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = RMSNorm(H), RMSNorm(H)
        self.q, self.k, self.v, self.o = LoraLinear(H, H), LoraLinear(H, NKV * HD), LoraLinear(H, NKV * HD), LoraLinear(H, H)
        self.gate, self.up, self.down = LoraLinear(H, FF), LoraLinear(H, FF), LoraLinear(FF, H)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = self.n1(x)
        q = self.q(h).view(B, T, NH, HD).transpose(1, 2)
        k = self.k(h).view(B, T, NKV, HD).transpose(1, 2)
        v = self.v(h).view(B, T, NKV, HD).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(HD)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, H)
        x = x + self.o(y)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Parameter(torch.randn(V, H) * 0.02, requires_grad=False)
        self.blocks = torch.nn.ModuleList([Block() for _ in range(L)])
        self.norm = RMSNorm(H)

    def forward(self, ids):
        T = ids.shape[1]
        inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, HD, 2).float() / HD))
        ang = torch.outer(torch.arange(T).float(), inv)
        cos = torch.cat((ang.cos(), ang.cos()), -1)
        sin = torch.cat((ang.sin(), ang.sin()), -1)
        x = F.embedding(ids, self.embed)
        for b in self.blocks:
            x = b(x, cos, sin)
        return F.linear(self.norm(x), self.embed)  # tied head


model = Model()
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=0.0)
ids = torch.randint(0, V, (cfg["batch"], cfg["seq"]))
tokens = cfg["batch"] * cfg["seq"]

step_s = []
for s in range(cfg["steps"]):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    logits = model(ids)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    loss.backward()
    opt.step()
    step_s.append(time.perf_counter() - t0)
train_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

score_s = []
with torch.no_grad():
    for _ in range(cfg["score_reps"]):
        t0 = time.perf_counter()
        logits = model(ids)
        lp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])
        score_s.append(time.perf_counter() - t0)

w = max(0, min(int(cfg["warmup"]), len(step_s) - 1))
timed = step_s[w:]
print(json.dumps({
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "blas": "openblas" if "openblas" in torch.__config__.show().lower() else "other",
    "trainStepSeconds": step_s,
    "trainTokensPerSecond": tokens / (sum(timed) / len(timed)),
    "trainPeakRssMB": train_rss_kb / 1024,
    "scoreSeconds": score_s,
    "scoreTokensPerSecond": tokens / min(score_s),
    "loss": float(loss),
    "config": cfg,
}))
