"""Analysis benchmark: torchlight's exact kNN + outlier scores (with the int8 screen, the default, and with plain
f32 products) against cleanlab's OutOfDistribution.fit_score and Annoy (100 trees, build + query of every item),
and torchlight's UMAP (exact 15-NN + PCA init + UMAP, as `analyze` runs it) against umap-learn (n_neighbors 15,
min_dist 0.1, cosine; numba compilation excluded by a warm-up run), with the trustworthiness (k = 10, cosine) of
both layouts; Fashion-MNIST raw pixels, same run. The last line times one space's whole analysis as `analyze`
runs it (one 15-NN search for scores and UMAP, PCA, UMAP) against cleanlab + Annoy + umap-learn.

    $PYTHON benches/analysis.py [--no-umap] [--features X.npy] [N ...]      (from the repository root)
        (default N = 10000; 70000 = all of Fashion-MNIST; --features: the first N rows of a float matrix, e.g.
         model embeddings from `torchlight export --embeddings SPACE -o X.npy`, instead of the pixels)

Needs a Python with cleanlab, annoy, umap-learn, scikit-learn and numpy, and the Fashion-MNIST IDX files
(t10k-* and train-*-idx?-ubyte.gz) in $FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist, which
Debian's dataset-fashion-mnist package installs).
Runs `cargo bench -p torchlight-engine --bench analysis` for torchlight's side (build it first: add `--no-run`);
torchlight's kNN + scores time is the median of BENCH_REPEAT runs (default 5) in one process, cleanlab's one run.
"""

import atexit
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

# Where the Rust bench reads the pixels itself; any other directory is handed to it as BENCH_FEATURES.
DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
DIR = os.environ.get("FASHION_MNIST_DIR", DEFAULT_DIR)


def images(name):
    path = f"{DIR}/{name}-images-idx3-ubyte.gz"
    if not os.path.exists(path):
        sys.exit(f"{path} not found: set FASHION_MNIST_DIR to a directory with Fashion-MNIST's IDX .gz files "
                 "(apt-get install dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist)")
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)


def torchlight(n, out, layout=None, screen=True):
    cmd = ["cargo", "bench", "-q", "-p", "torchlight-engine", "--bench", "analysis", "--", str(n), out, "cpu"]
    cmd += [layout] if layout else []
    # libtorch's OpenMP threads sleep when idle, as the torchlight binary arranges for itself.
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    env["BENCH_SCREEN"] = "1" if screen else "0"
    env.setdefault("BENCH_REPEAT", "5")
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    args = sys.argv[1:]
    with_umap = "--no-umap" not in args
    features = args[args.index("--features") + 1] if "--features" in args else None
    sizes = [int(a) for a in args if a.isdigit()] or [10000]
    if features:
        x_all = np.load(features).astype(np.float32)
        os.environ["BENCH_FEATURES"] = os.path.abspath(features)
        what = f"{os.path.basename(features)} ({x_all.shape[1]}-d)"
    else:
        x_all = np.concatenate([images("t10k"), images("train")]).astype(np.float32)
        what = "Fashion-MNIST raw pixels"
        if os.path.realpath(DIR) != os.path.realpath(DEFAULT_DIR):
            # The Rust bench reads the pixels from DEFAULT_DIR; elsewhere it gets the same f32 rows as a .npy.
            pixels = tempfile.NamedTemporaryFile(suffix=".npy", delete=False)
            np.save(pixels, x_all[: max(sizes)])
            pixels.close()
            atexit.register(os.unlink, pixels.name)
            os.environ["BENCH_FEATURES"] = pixels.name
    from annoy import AnnoyIndex
    from cleanlab.outlier import OutOfDistribution

    for n in sizes:
        x = x_all[:n]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "scores.npy")
            layout_path = os.path.join(tmp, "layout.npy") if with_umap else None
            load_before = os.getloadavg()[0]
            tl = torchlight(n, out, layout_path)
            ours = np.load(out).astype(np.float64)
            our_layout = np.load(layout_path) if with_umap else None
            f32 = torchlight(n, out, screen=False)
            ours_f32 = np.load(out).astype(np.float64)

        t0 = time.perf_counter()
        ref = OutOfDistribution().fit_score(features=x)
        t_cleanlab = time.perf_counter() - t0

        t0 = time.perf_counter()
        index = AnnoyIndex(x.shape[1], "angular")
        for i, row in enumerate(x):
            index.add_item(i, row)
        index.build(100)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(n):
            index.get_nns_by_item(i, 11)
        t_query = time.perf_counter() - t0

        diff = float(np.abs(ours - ref).max())
        diff_f32 = float(np.abs(ours_f32 - ref).max())
        same_top = bool((np.argsort(ours, kind="stable")[:20] == np.argsort(ref, kind="stable")[:20]).all())
        t = tl["knn_outlier_s"]
        t_f32 = f32["knn_outlier_s"]
        # 1-minute load average before torchlight and after cleanlab: above ~1.5 another process shares the 2 cores.
        load = f"load {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
        print(f"{what}: {n} x {x.shape[1]}, {tl['threads']} threads, torchlight on {tl['device']}, {load}")
        screen = ("screen declined by the pilot, plain f32" if tl["declined"] else
                  f"int8 screen, {tl['rescanned']} items searched exactly without a proof")
        print(f"  torchlight exact kNN + outlier scores: {t:.3f} s, median of {tl['runs']} (fastest {tl['fastest_s']:.3f} s; "
              f"kNN {tl['knn_s']:.3f} s; {screen})")
        print(f"  the same with plain f32 products:      {t_f32:.3f} s  ({t_f32 / t:.1f}x slower than the default)")
        print(f"  cleanlab OutOfDistribution.fit_score:  {t_cleanlab:.2f} s  -> {t_cleanlab / t:.1f}x "
              f"(f32 products: {t_cleanlab / t_f32:.1f}x)")
        print(f"  Annoy 100 trees build + query all:     {t_build:.2f} + {t_query:.2f} s  -> {(t_build + t_query) / t:.1f}x")
        print(f"  scores vs cleanlab: max |diff| {diff:.2e} (f32 products {diff_f32:.2e}), same top-20 outliers: {same_top}")
        if with_umap:
            t_seeded, t_parallel = umap_bench(x, tl["umap_s"], our_layout)
            ours_total = tl["analysis_s"]
            theirs = t_cleanlab + t_build + t_query
            st = tl["stages"]
            print(f"  one space's whole analysis, as analyze runs it: torchlight {ours_total:.2f} s (15-NN "
                  f"{st['knn15']:.2f}, scores {st['scores']:.3f}, PCA {st['pca']:.2f}, UMAP {st['umap']:.2f}); "
                  f"cleanlab + Annoy + umap-learn {theirs + t_seeded:.2f} s seeded -> "
                  f"{(theirs + t_seeded) / ours_total:.1f}x, {theirs + t_parallel:.2f} s unseeded -> "
                  f"{(theirs + t_parallel) / ours_total:.1f}x")


def umap_bench(x, ours_s, our_layout):
    import umap
    from sklearn.manifold import trustworthiness

    # numba compiles on first use: a small warm-up run keeps compilation out of the timings.
    umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=42).fit_transform(x[:2000])
    umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine").fit_transform(x[:2000])
    t0 = time.perf_counter()
    seeded = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=42).fit_transform(x)
    t_seeded = time.perf_counter() - t0
    t0 = time.perf_counter()
    umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine").fit_transform(x)
    t_parallel = time.perf_counter() - t0
    tw_ours = trustworthiness(x, our_layout, n_neighbors=10, metric="cosine")
    tw_ref = trustworthiness(x, seeded, n_neighbors=10, metric="cosine")
    print(f"  torchlight UMAP (exact 15-NN + PCA init + UMAP, seeded): {ours_s:.2f} s")
    print(f"  umap-learn seeded (random_state, one thread):  {t_seeded:.2f} s  -> {t_seeded / ours_s:.1f}x")
    print(f"  umap-learn unseeded (parallel, not reproducible): {t_parallel:.2f} s  -> {t_parallel / ours_s:.1f}x")
    print(f"  trustworthiness (k=10, cosine): torchlight {tw_ours:.4f}, umap-learn {tw_ref:.4f}")
    return t_seeded, t_parallel


if __name__ == "__main__":
    main()
