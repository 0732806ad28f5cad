"""The article's Python ingest pipeline, for benches/ingest.sh (not a test).

Images as a Hugging Face `datasets` ImageFolder, `AutoImageProcessor` + `AutoModel`, `dataset.map(...,
batched=True, batch_size=24)`, embedding = CLS token of the last hidden state. Prints one line:
`python N images S seconds R images/s` (time of the map, i.e. decode + preprocess + model; the one-off
dataset load and model load are left out, in Python's favour).

Usage: python benches/ingest_ref.py DATA_DIR MODEL_DIR THREADS [make-model | make-model-base | make-trivial | trivial]
  make-model: writes a tiny random ViT (hidden 48, 40 px, 2 layers) with its image processor to MODEL_DIR.
  make-model-base: writes a random ViT with google/vit-base-patch16-224-in21k's shape (the GPU regime).
  make-trivial: writes MODEL_DIR/trivial.pt, a TorchScript module that costs nothing (the mean of each channel),
    with its preprocessing for torchlight (trivial.json) and for transformers' ViT processor at 224x224.
  trivial: the article's loop over DATA_DIR (an ImageFolder) with that module instead of the datasets map: PIL
    opens each image, ViTImageProcessor (PIL backend) makes 224x224 inputs, batches of 24 go through the module.
    What remains is decoding, resizing and normalising: the pipeline's own cost.
Environment: DEVICE (cpu, cuda; default cpu), EMB_OUT (optional .npy path for the embeddings, for parity checks).
"""

import os
import sys
import tempfile
import time


def make_model(model_dir: str, base: bool) -> None:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel
    import torch

    torch.manual_seed(0)
    if base:
        cfg, size = ViTConfig(), 224  # the defaults are vit-base-patch16-224's shape
    else:
        cfg = ViTConfig(
            image_size=40,
            patch_size=8,
            num_channels=3,
            hidden_size=48,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=96,
        )
        size = 40
    ViTModel(cfg, add_pooling_layer=False).eval().save_pretrained(model_dir)
    ViTImageProcessor(
        size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(model_dir)


def make_trivial(model_dir: str) -> None:
    import json

    import torch
    from transformers import ViTImageProcessor

    class ChannelMean(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    os.makedirs(model_dir, exist_ok=True)
    torch.jit.script(ChannelMean()).save(os.path.join(model_dir, "trivial.pt"))
    # The same preprocessing on both sides: RGB, Pillow bilinear resize to 224x224, rescale, normalise by 0.5.
    with open(os.path.join(model_dir, "trivial.json"), "w") as f:
        json.dump({"image_size": [224, 224], "mean": [0.5] * 3, "std": [0.5] * 3, "resample": "bilinear",
                   "channels": 3, "rescale_factor": 1 / 255}, f)
    ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(
        model_dir)


def trivial_loop(data_dir: str, model_dir: str, threads: int) -> None:
    import numpy as np
    import torch
    from PIL import Image
    from transformers import ViTImageProcessor

    torch.set_num_threads(threads)
    processor = ViTImageProcessor.from_pretrained(model_dir)
    model = torch.jit.load(os.path.join(model_dir, "trivial.pt")).eval()
    # ImageFolder order, as torchlight reads it: classes, then files, sorted by name.
    files = [os.path.join(data_dir, c, f) for c in sorted(os.listdir(data_dir))
             for f in sorted(os.listdir(os.path.join(data_dir, c)))]
    t0 = time.perf_counter()
    out = []
    for i in range(0, len(files), 24):
        images = [Image.open(f).convert("RGB") for f in files[i:i + 24]]
        inputs = processor(images=images, return_tensors="pt")
        with torch.no_grad():
            out.append(model(inputs["pixel_values"]).numpy())
    dt = time.perf_counter() - t0
    n = len(files)
    print(f"python {n} images {dt:.2f} seconds {n / dt:.1f} images/s")
    if os.environ.get("EMB_OUT"):
        np.save(os.environ["EMB_OUT"], np.concatenate(out).astype(np.float32))


def main() -> None:
    data_dir, model_dir, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else ""
    if mode.startswith("make-model"):
        make_model(model_dir, mode == "make-model-base")
        return
    if mode == "make-trivial":
        make_trivial(model_dir)
        return
    if mode == "trivial":
        trivial_loop(data_dir, model_dir, threads)
        return
    import torch
    import datasets
    from transformers import AutoImageProcessor, AutoModel

    torch.set_num_threads(threads)
    datasets.disable_progress_bars()
    cache = tempfile.mkdtemp(prefix="ingest-ref-")
    ds = datasets.load_dataset("imagefolder", data_dir=data_dir, split="train", cache_dir=cache)
    # The PIL processor, as in the article (transformers 5 picks torchvision's when it is installed).
    processor = AutoImageProcessor.from_pretrained(model_dir, use_fast=False)
    device = os.environ.get("DEVICE", "cpu")
    model = AutoModel.from_pretrained(model_dir).eval().to(device)

    def embed(batch):
        inputs = processor(images=[im.convert("RGB") for im in batch["image"]], return_tensors="pt").to(device)
        with torch.no_grad():
            out = model(**inputs)
        return {"embedding": out.last_hidden_state[:, 0].cpu().numpy()}

    t0 = time.perf_counter()
    out = ds.map(embed, batched=True, batch_size=24, remove_columns=["image"], cache_file_name=os.path.join(cache, "m.arrow"))
    dt = time.perf_counter() - t0
    n = len(out)
    print(f"python {n} images {dt:.2f} seconds {n / dt:.1f} images/s")
    if os.environ.get("EMB_OUT"):
        import numpy as np

        # imagefolder orders by class folder then file name, as torchlight's ImageFolder source does.
        np.save(os.environ["EMB_OUT"], np.asarray(out["embedding"], dtype=np.float32))


if __name__ == "__main__":
    main()
