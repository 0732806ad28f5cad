#!/usr/bin/env python3
"""Regenerate the demo's checkpoint series: a small CNN trained on the embedded digits (run once; CI never runs this).

    $PYTHON crates/engine/src/demo/assets/make_series.py            # from the repository root

Needs PyTorch (2.13) and numpy; no network. Reads mnist-digits-*.gz beside this script (make_assets.py writes
them) and writes, next to it:

- step-<N>.pt/.json for N in CHECKPOINTS: the CNN traced and frozen to TorchScript at training step N (step 0 is
  the seeded initialisation). Output: (32-d embedding after ReLU, 10 logits); the .json is the preprocessing
  contract, the same as mnist-cnn.json's.
- series.json: the series as torchlight stores it (`torchlight_store::Series`): the spaces `step-<N>` in step
  order and the training loss every LOG_EVERY steps (the loss of that step's batch, before its update).

The run is seeded and single-threaded, so it gives the same numbers on the same PyTorch build.
"""

import gzip
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent

# Steps whose weights are kept: dense early, where the embedding moves most, then doubling.
CHECKPOINTS = [0, 25, 50, 100, 200, 400]
LOG_EVERY = 5
BATCH = 64
LR = 2e-3
SEED = 0
MNIST_MEAN = [0.1307]
MNIST_STD = [0.3081]
RESCALE = 1.0 / 255.0


def dump_json(obj: dict) -> str:
    """One top-level key a line: readable, and diffs of regenerated files stay small."""
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()) + "\n}\n"


def read_idx():
    with gzip.open(HERE / "mnist-digits-images-idx3-ubyte.gz") as f:
        raw = f.read()
    n, h, w = np.frombuffer(raw[4:16], dtype=">u4")
    images = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, h, w)
    with gzip.open(HERE / "mnist-digits-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read()[8:], dtype=np.uint8)
    assert len(labels) == n
    return images, labels


class SmallCnn(nn.Module):
    """About 6,000 weights: two 3x3 convolutions (8 and 16 channels), each followed by 2x2 pooling, a third
    pooling to 16x3x3, a 32-d embedding and the 10-way head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.embed = nn.Linear(16 * 3 * 3, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(x, 2).flatten(1)
        h = F.relu(self.embed(x))
        return h, self.head(h)


def save_checkpoint(net: nn.Module, step: int, x: torch.Tensor, labels: np.ndarray) -> float:
    net.eval()
    with torch.no_grad():
        traced = torch.jit.freeze(torch.jit.trace(net, x[:4]).eval())
        emb, logits = traced(x)
        _, ref_logits = net(x)
    net.train()
    assert emb.shape == (len(labels), 32) and logits.shape == (len(labels), 10)
    assert torch.allclose(logits, ref_logits, atol=1e-4), f"step {step}: traced CNN differs from the eager one"
    acc = float((logits.argmax(1).numpy() == labels).mean())
    torch.jit.save(traced, str(HERE / f"step-{step}.pt"))
    (HERE / f"step-{step}.json").write_text(dump_json({
        "image_size": [28, 28], "mean": MNIST_MEAN, "std": MNIST_STD, "resample": "bilinear", "channels": 1,
        "rescale_factor": RESCALE, "class_names": [str(d) for d in range(10)],
    }))
    return acc


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    images, labels = read_idx()
    x = torch.from_numpy(images.astype(np.float32) * RESCALE)[:, None]
    x = (x - MNIST_MEAN[0]) / MNIST_STD[0]
    y = torch.from_numpy(labels.astype(np.int64))
    net = SmallCnn()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(SEED)
    order = torch.randperm(len(y), generator=gen)
    losses, accuracies = [], {}
    at = 0
    for step in range(CHECKPOINTS[-1] + 1):
        if step in CHECKPOINTS:
            accuracies[step] = save_checkpoint(net, step, x, labels)
        if step == CHECKPOINTS[-1]:
            break
        if at + BATCH > len(y):
            order, at = torch.randperm(len(y), generator=gen), 0
        idx = order[at:at + BATCH]
        at += BATCH
        _, logits = net(x[idx])
        loss = F.cross_entropy(logits, y[idx])
        if step % LOG_EVERY == 0:
            losses.append({"step": step, "loss": round(float(loss.detach()), 5)})
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert accuracies[CHECKPOINTS[-1]] >= 0.9, f"the trained CNN reaches only {accuracies[CHECKPOINTS[-1]]}"
    (HERE / "series.json").write_text(dump_json({
        "steps": [{"space": f"step-{s}", "step": s} for s in CHECKPOINTS],
        "losses": losses,
    }))
    for step, acc in accuracies.items():
        print(f"step {step:>4}: accuracy on the 10,000 digits {acc:.4f}")
    print(f"loss {losses[0]['loss']} at step 0, {losses[-1]['loss']} at step {losses[-1]['step']}")
    for p in sorted(HERE.glob("step-*")) + [HERE / "series.json"]:
        print(f"{p.stat().st_size:>10}  {p.name}")


if __name__ == "__main__":
    main()
