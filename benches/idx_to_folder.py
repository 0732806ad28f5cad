"""Writes the first N images of an IDX pair (MNIST family, .gz) as an ImageFolder of PNGs: OUT/class<label>/<i>.png.
The benchmarks feed the same files to torchlight and to the Python pipeline.

Usage: python benches/idx_to_folder.py IMAGES.gz LABELS.gz OUT N
"""

import gzip
import os
import sys

import numpy as np
from PIL import Image

imgs, labels, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
x = np.frombuffer(gzip.open(imgs).read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
y = np.frombuffer(gzip.open(labels).read(), np.uint8, offset=8)[:n]
for i, (im, label) in enumerate(zip(x, y)):
    d = os.path.join(out, f"class{label}")
    os.makedirs(d, exist_ok=True)
    Image.fromarray(im).save(os.path.join(d, f"{i:06d}.png"))
