"""The article's Python ingest pipeline, for benches/ingest.sh (not a test).

Images as a Hugging Face `datasets` ImageFolder, `AutoImageProcessor` + `AutoModel`, `dataset.map(...,
batched=True, batch_size=24)`, embedding = CLS token of the last hidden state. Prints one line:
`python N images S seconds R images/s` (time of the map, i.e. decode + preprocess + model; the one-off
dataset load and model load are left out, in Python's favour).

Usage: python benches/ingest_ref.py DATA_DIR MODEL_DIR THREADS [make-model]
  make-model: first writes a tiny random ViT (hidden 48, 40 px, 2 layers) with its image processor to MODEL_DIR.
"""

import os
import sys
import tempfile
import time


def make_model(model_dir: str) -> None:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel
    import torch

    torch.manual_seed(0)
    cfg = ViTConfig(
        image_size=40,
        patch_size=8,
        num_channels=3,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=96,
    )
    ViTModel(cfg, add_pooling_layer=False).eval().save_pretrained(model_dir)
    ViTImageProcessor(size={"height": 40, "width": 40}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(
        model_dir
    )


def main() -> None:
    data_dir, model_dir, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if len(sys.argv) > 4 and sys.argv[4] == "make-model":
        make_model(model_dir)
        return
    import torch
    import datasets
    from transformers import AutoImageProcessor, AutoModel

    torch.set_num_threads(threads)
    datasets.disable_progress_bars()
    cache = tempfile.mkdtemp(prefix="ingest-ref-")
    ds = datasets.load_dataset("imagefolder", data_dir=data_dir, split="train", cache_dir=cache)
    processor = AutoImageProcessor.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()

    def embed(batch):
        inputs = processor(images=[im.convert("RGB") for im in batch["image"]], return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs)
        return {"embedding": out.last_hidden_state[:, 0].numpy()}

    t0 = time.perf_counter()
    out = ds.map(embed, batched=True, batch_size=24, remove_columns=["image"], cache_file_name=os.path.join(cache, "m.arrow"))
    dt = time.perf_counter() - t0
    n = len(out)
    print(f"python {n} images {dt:.2f} seconds {n / dt:.1f} images/s")


if __name__ == "__main__":
    main()
