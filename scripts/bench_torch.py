#!/usr/bin/env python3
"""PyTorch beside pml: trains the zoo's fashion-cnn (or mlp) as pml defines it, on
Fashion-MNIST with Adam (Keras' defaults), batch 32, on ONE thread, and prints the seconds of
each epoch and the test accuracy. A benchmark, not a test (Debian python3-torch).

    python3 scripts/bench_torch.py fashion-cnn --epochs 1
"""
import argparse
import gzip
import os
import struct
import sys
import time

# one thread means one: OpenBLAS and OpenMP start their own threads unless told (before import)
_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = _threads

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, = struct.unpack(">I", raw[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def model(name):
    if name == "fashion-cnn":  # models/zoo/fashion-cnn.dot
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10))
    if name == "mlp":  # models/zoo/mlp.dot
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    sys.exit(f"bench_torch.py: unknown model '{name}' (fashion-cnn or mlp)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="fashion-cnn")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    x = torch.from_numpy(idx(f"{DATA}/train-images-idx3-ubyte.gz").astype(np.float32) / 255.0)
    y = torch.from_numpy(idx(f"{DATA}/train-labels-idx1-ubyte.gz").astype(np.int64))
    xt = torch.from_numpy(idx(f"{DATA}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0)
    yt = torch.from_numpy(idx(f"{DATA}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    x, xt = x.unsqueeze(1), xt.unsqueeze(1)
    m = model(a.model)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    lossf = nn.CrossEntropyLoss()
    for ep in range(a.epochs):
        perm = torch.randperm(x.shape[0])
        t0 = time.perf_counter()
        m.train()
        for i in range(0, x.shape[0], a.batch):
            b = perm[i:i + a.batch]
            opt.zero_grad(set_to_none=True)
            loss = lossf(m(x[b]), y[b])
            loss.backward()
            opt.step()
        dt = time.perf_counter() - t0
        print(f"epoch {ep + 1}: {dt:.2f} s, loss {loss.item():.4f}", flush=True)
    m.eval()
    with torch.no_grad():
        acc = (m(xt).argmax(1) == yt).float().mean().item()
    print(f"test accuracy {acc:.4f} (torch {torch.__version__}, {torch.get_num_threads()} thread(s))")


if __name__ == "__main__":
    main()
