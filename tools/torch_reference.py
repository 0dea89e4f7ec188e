#!/usr/bin/env python3
"""PyTorch reference of the seed's sensor ViT (docs: ../shared/docs/model-spec.md).

The model class follows the seed's code (000_a4374ca15670fa15.txt) line for line, generalised to
L blocks and a configurable dense-tower width. This script is the oracle for harvit:

  torch_reference.py fixtures --out tests/fixtures     write the parity fixtures the C++ tests read
  torch_reference.py attention --out tests/fixtures    only the attention fixtures (harvit explain)
  torch_reference.py bench --batch 128 --threads 2     training windows/s of the PyTorch model
  torch_reference.py info                              parameter count of the seed config

Fixture parameters and inputs come from a counter-based hash (fixture_uniform) that harvit
implements identically (src/core/rng.cpp), so fixtures need not store 4.4 M initial weights.
"""
import argparse
import json
import resource
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

FIXTURE_FORMAT = "harvit-fixture"
FIXTURE_VERSION = 1


class VisionTransformerBlock(nn.Module):
    def __init__(self, input_dim=256, head_num=4, att_size=64):
        super().__init__()
        self.head_num = head_num
        self.att_size = att_size
        self.input_dim = input_dim
        self.query = nn.Linear(input_dim, head_num * att_size)
        self.key = nn.Linear(input_dim, head_num * att_size)
        self.value = nn.Linear(input_dim, head_num * att_size)
        self.att_mlp = nn.Sequential(nn.Linear(head_num * att_size, input_dim), nn.LayerNorm(input_dim))
        self.downsample_mlp = nn.Sequential(nn.Linear(input_dim * 2, input_dim), nn.LayerNorm(input_dim))

    def patch_merge(self, x):
        batch, modal_leng, patch_num, input_dim = x.shape
        if patch_num % 2:
            x = nn.ZeroPad2d((0, 0, 0, 1))(x)
        x0 = x[:, :, 0::2, :]
        x1 = x[:, :, 1::2, :]
        x = torch.cat([x0, x1], dim=-1)
        x = nn.ReLU()(self.downsample_mlp(x))
        return x

    def forward(self, x):
        batch, modal_leng, patch_num, input_dim = x.shape
        query = self.query(x).reshape(batch, modal_leng, patch_num, self.head_num, self.att_size).permute(0, 1, 3, 2, 4)
        key = self.key(x).reshape(batch, modal_leng, patch_num, self.head_num, self.att_size).permute(0, 1, 3, 4, 2)
        value = self.value(x).reshape(batch, modal_leng, patch_num, self.head_num, self.att_size).permute(0, 1, 3, 2, 4)
        att = nn.Softmax(dim=-1)(torch.matmul(query, key) / (self.att_size ** 0.5))
        self.last_attention = att.detach()  # (batch, modal, head, n, n): the attention fixture's reference
        z = torch.matmul(att, value)
        z = z.permute(0, 1, 3, 2, 4).reshape(batch, modal_leng, patch_num, -1)
        z = nn.ReLU()(x + self.att_mlp(z))
        out = self.patch_merge(z)
        return out


class VisionTransformer(nn.Module):
    """The seed's model. train_shape = (..., T, M); blocks/hidden generalise the seed's 3 / 1024."""

    def __init__(self, train_shape, category, embedding_dim=256, patch_size=4, head_num=4, att_size=64,
                 blocks=3, hidden=1024):
        super().__init__()
        self.series_leng = train_shape[-2]
        self.modal_leng = train_shape[-1]
        self.patch_num = self.series_leng // patch_size
        self.patch_conv = nn.Conv2d(in_channels=1, out_channels=embedding_dim, kernel_size=(patch_size, 1),
                                    stride=(patch_size, 1), padding=0)
        self.position_embedding = nn.Parameter(torch.zeros(1, self.modal_leng, self.patch_num, embedding_dim))
        self.msa_layer = nn.Sequential(*[VisionTransformerBlock(embedding_dim, head_num, att_size)
                                         for _ in range(blocks)])
        n = self.patch_num
        for _ in range(blocks):
            n = (n + 1) // 2  # = math.ceil(patch_num / 8) for the seed's 3 blocks
        self.dense_tower = nn.Sequential(
            nn.Linear(self.modal_leng * n * embedding_dim, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Linear(hidden, category),
        )

    def forward(self, x):
        x = self.patch_conv(x)
        x = self.position_embedding + x.permute(0, 3, 2, 1)
        x = self.msa_layer(x)
        x = nn.Flatten()(x)
        x = self.dense_tower(x)
        return x


def config_dict(T=128, M=3, C=6, P=4, D=256, H=4, A=64, L=3, hidden=1024):
    return dict(model="vit", T=T, M=M, C=C, P=P, D=D, H=H, A=A, L=L, hidden=hidden)


def build(cfg):
    return VisionTransformer((1, cfg["T"], cfg["M"]), cfg["C"], embedding_dim=cfg["D"], patch_size=cfg["P"],
                             head_num=cfg["H"], att_size=cfg["A"], blocks=cfg["L"], hidden=cfg["hidden"])


# ---- counter-based fixture values (identical to harvit::fixture_uniform) ------------------------
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x):
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def fixture_uniform(seed, stream, n):
    with np.errstate(over="ignore"):
        base = _splitmix64(np.uint64(seed) * np.uint64(1000003) + np.uint64(stream))
        v = _splitmix64(base + np.arange(n, dtype=np.uint64))
    return ((v >> np.uint64(40)).astype(np.float32) / np.float32(16777216.0)) * np.float32(2.0) - np.float32(1.0)


def is_layernorm(name):
    return name.startswith("dense_tower.1.") or ".att_mlp.1." in name or ".downsample_mlp.1." in name


def fixture_params(model, seed):
    """Deterministic parameters: Linear/Conv U(-b, b) with PyTorch's bound b = 1/sqrt(fan_in),
    LayerNorm gain 1 + 0.1u and bias 0.1u, position table 0.02u (non-zero so it matters)."""
    sd = model.state_dict()
    weights = {k: v for k, v in sd.items()}
    out = {}
    for k, (name, t) in enumerate(sd.items()):
        u = fixture_uniform(seed, k, t.numel())
        if name == "position_embedding":
            val = np.float32(0.02) * u
        elif is_layernorm(name):
            val = np.float32(1.0) + np.float32(0.1) * u if name.endswith("weight") else np.float32(0.1) * u
        else:
            w = weights[name.rsplit(".", 1)[0] + ".weight"]
            fan_in = int(np.prod(w.shape[1:]))
            val = np.float32(1.0 / math.sqrt(fan_in)) * u
        out[name] = torch.from_numpy(val.reshape(tuple(t.shape)).astype(np.float32))
    model.load_state_dict(out)


def fixture_batch(cfg, seed, stream, B):
    x = np.float32(2.0) * fixture_uniform(seed, stream, B * cfg["T"] * cfg["M"])
    u = fixture_uniform(seed, stream + 1, B)
    y = np.minimum(((u.astype(np.float64) + 1.0) * 0.5 * cfg["C"]).astype(np.int32), cfg["C"] - 1)
    return torch.from_numpy(x.reshape(B, 1, cfg["T"], cfg["M"])), torch.from_numpy(y.astype(np.int64))


FULL_GRAD_LIMIT = 300_000   # larger gradients are stored as a fixed sample of entries
SAMPLE = 65_536


def sample_index(n, seed):
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=SAMPLE, replace=False)).astype(np.int32)


def write_fixture(path, cfg, seed=1, B=8, steps=10, lr=5e-4, wd=1e-3, step_size=3, gamma=0.5):
    torch.manual_seed(0)
    model = build(cfg)
    fixture_params(model, seed)
    x, y = fixture_batch(cfg, seed, 1000, B)
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y)
    loss.backward()
    t = {"x": x.numpy(), "y": y.numpy().astype(np.int32), "logits": logits.detach().numpy().copy(),
         "loss": np.array([loss.item()], dtype=np.float32)}
    for name, p in model.named_parameters():
        g = p.grad.detach().numpy().reshape(-1).copy()
        if g.size <= FULL_GRAD_LIMIT:
            t["grad." + name] = g.reshape(p.shape)
        else:
            idx = sample_index(g.size, 7)
            t["grad_idx." + name] = idx
            t["grad_sample." + name] = g[idx]
    # Training trajectory: `steps` AdamW steps, StepLR stepped every step, a fresh batch each step.
    fixture_params(model, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma)
    losses = []
    for s in range(steps):
        xb, yb = fixture_batch(cfg, seed, 2000 + 2 * s, B)
        opt.zero_grad()
        l = nn.functional.cross_entropy(model(xb), yb)
        l.backward()
        opt.step()
        sched.step()
        losses.append(l.item())
    t["train_losses"] = np.array(losses, dtype=np.float32)
    with torch.no_grad():
        t["final_logits"] = model(x).numpy()
    meta = {"format": FIXTURE_FORMAT, "version": FIXTURE_VERSION, "config": json.dumps(cfg), "seed": seed,
            "batch": B, "steps": steps, "lr": lr, "weight_decay": wd, "step_size": step_size, "gamma": gamma,
            "torch": torch.__version__}
    safetensors_io.save(path, t, meta)
    print(f"wrote {path}: loss {loss.item():.6f}, trajectory {[round(v, 5) for v in losses]}")


def write_attention_fixture(path, cfg, seed=1, B=8):
    """The attention probabilities of every block for the parity fixture's parameters and batch
    (tests/test_attention_parity.cpp): att.<l> [B, M, H, n_l, n_l], softmax over the last index."""
    torch.manual_seed(0)
    model = build(cfg)
    fixture_params(model, seed)
    x, y = fixture_batch(cfg, seed, 1000, B)
    with torch.no_grad():
        logits = model(x)
    t = {"x": x.numpy(), "logits": logits.numpy().copy()}
    for l, block in enumerate(model.msa_layer):
        t[f"att.{l}"] = block.last_attention.numpy().copy()
    meta = {"format": FIXTURE_FORMAT, "version": FIXTURE_VERSION, "kind": "attention", "config": json.dumps(cfg),
            "seed": seed, "batch": B, "torch": torch.__version__}
    safetensors_io.save(path, t, meta)
    shapes = {k: list(v.shape) for k, v in t.items() if k.startswith("att.")}
    print(f"wrote {path}: {shapes}")


def cmd_attention(args):
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    write_attention_fixture(os.path.join(args.out, "vit_seed_attention.safetensors"), config_dict())
    write_attention_fixture(os.path.join(args.out, "vit_odd_attention.safetensors"), ODD_CONFIG)


# N = 25 exercises the zero-padded patch merge (25 -> 13 -> 7 -> 4), H*A != D.
ODD_CONFIG = config_dict(T=100, M=6, C=12, P=4, D=64, H=3, A=24, L=3, hidden=96)


def cmd_fixtures(args):
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    write_fixture(os.path.join(args.out, "vit_seed.safetensors"), config_dict())
    # Odd config: N = 25 exercises the zero-padded patch merge (25 -> 13 -> 7 -> 4), H*A != D.
    write_fixture(os.path.join(args.out, "vit_odd.safetensors"), ODD_CONFIG)
    cmd_attention(args)


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    cfg = config_dict()
    model = build(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-3)
    x = torch.randn(args.batch, 1, cfg["T"], cfg["M"])
    y = torch.randint(0, cfg["C"], (args.batch,))

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    dt = time.perf_counter() - t0
    res = {"impl": "pytorch", "torch": torch.__version__, "threads": args.threads, "batch": args.batch,
           "steps": args.steps, "seconds": dt, "windows_per_s": args.batch * args.steps / dt,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    print(json.dumps(res))


def cmd_bench_infer(args):
    torch.set_num_threads(args.threads)
    cfg = config_dict()
    model = build(cfg).eval()
    x = torch.randn(max(args.batch, 64), 1, cfg["T"], cfg["M"])
    ms = []
    with torch.no_grad():
        for i in range(50):
            model(x[i % 64:i % 64 + 1])
        for i in range(args.windows):
            t0 = time.perf_counter()
            model(x[i % 64:i % 64 + 1])
            ms.append((time.perf_counter() - t0) * 1e3)
        ms.sort()
        xb = x[:args.batch]
        model(xb)
        reps, t0 = 0, time.perf_counter()
        while reps < 5 or time.perf_counter() - t0 < 2.0:
            model(xb)
            reps += 1
        el = time.perf_counter() - t0
    print(json.dumps({"impl": "pytorch", "threads": args.threads, "b1_median_ms": ms[len(ms) // 2],
                      "b1_p99_ms": ms[min(len(ms) - 1, len(ms) * 99 // 100)], "batch": args.batch,
                      "batch_windows_per_s": reps * args.batch / el}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fixtures")
    f.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    fa = sub.add_parser("attention")
    fa.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    b = sub.add_parser("bench")
    b.add_argument("--batch", type=int, default=128)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--steps", type=int, default=10)
    b.add_argument("--warmup", type=int, default=2)
    bi = sub.add_parser("bench-infer")
    bi.add_argument("--windows", type=int, default=1000)
    bi.add_argument("--batch", type=int, default=256)
    bi.add_argument("--threads", type=int, default=2)
    sub.add_parser("info")
    args = ap.parse_args()
    if args.cmd == "fixtures":
        cmd_fixtures(args)
    elif args.cmd == "attention":
        cmd_attention(args)
    elif args.cmd == "bench":
        cmd_bench(args)
    elif args.cmd == "bench-infer":
        cmd_bench_infer(args)
    else:
        m = build(config_dict())
        print(json.dumps({"params": sum(p.numel() for p in m.parameters()),
                          "state_dict": list(m.state_dict().keys())[:4]}))


if __name__ == "__main__":
    main()
