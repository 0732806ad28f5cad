"""Analysis benchmark: torchlight's exact kNN + outlier scores against cleanlab's OutOfDistribution.fit_score
and Annoy (100 trees, build + query of every item), on Fashion-MNIST raw pixels, in the same run.

    /work/pyref/bin/python benches/analysis.py [N ...]      (default N = 10000; 70000 = all of Fashion-MNIST)

Needs cleanlab, annoy, numpy (the team's /work/pyref) and Fashion-MNIST under /usr/share/datasets/fashion-mnist.
Runs `cargo bench --bench analysis` for torchlight's side (build it first: `cargo bench --bench analysis --no-run`).
"""

import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

DIR = "/usr/share/datasets/fashion-mnist"


def images(name):
    with gzip.open(f"{DIR}/{name}-images-idx3-ubyte.gz") as f:
        return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)


def torchlight(n, out):
    cmd = ["cargo", "bench", "-q", "--bench", "analysis", "--", str(n), out]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [10000]
    x_all = np.concatenate([images("t10k"), images("train")]).astype(np.float32)
    from annoy import AnnoyIndex
    from cleanlab.outlier import OutOfDistribution

    for n in sizes:
        x = x_all[:n]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "scores.npy")
            tl = torchlight(n, out)
            ours = np.load(out).astype(np.float64)

        t0 = time.perf_counter()
        ref = OutOfDistribution().fit_score(features=x)
        t_cleanlab = time.perf_counter() - t0

        t0 = time.perf_counter()
        index = AnnoyIndex(784, "angular")
        for i, row in enumerate(x):
            index.add_item(i, row)
        index.build(100)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(n):
            index.get_nns_by_item(i, 11)
        t_query = time.perf_counter() - t0

        diff = float(np.abs(ours - ref).max())
        same_top = bool((np.argsort(ours, kind="stable")[:20] == np.argsort(ref, kind="stable")[:20]).all())
        t = tl["knn_outlier_s"]
        print(f"Fashion-MNIST {n} x 784 raw pixels, {tl['threads']} threads, torchlight on {tl['device']}")
        print(f"  torchlight exact kNN + outlier scores: {t:.2f} s (kNN {tl['knn_s']:.2f} s)")
        print(f"  cleanlab OutOfDistribution.fit_score:  {t_cleanlab:.2f} s  -> {t_cleanlab / t:.1f}x")
        print(f"  Annoy 100 trees build + query all:     {t_build:.2f} + {t_query:.2f} s  -> {(t_build + t_query) / t:.1f}x")
        print(f"  scores vs cleanlab: max |diff| {diff:.2e}, same top-20 outliers: {same_top}")


if __name__ == "__main__":
    main()
