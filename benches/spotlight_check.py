"""Loads `torchlight export --spotlight` files into Renumics Spotlight's data store the way `spotlight.show` does,
with the article's dtypes, and decodes every image cell. Run by hand, not by CI (Spotlight is a large install):

    $PYTHON benches/spotlight_check.py EXPORT.parquet [...]

Needs a Python with renumics-spotlight 1.8.x (pip install renumics-spotlight==1.8.2; it pins pandas < 3, so
give it a virtual environment of its own). No web server is started: the file is read with `pd.read_parquet`
and handed, as `show(df, dtype=...)` hands it, to Spotlight's pandas data source and its `DataStore`; each
`image` and `nn_image` cell then goes through the conversion the browser's image requests use (bytes or a file
path, decoded by imageio and re-encoded). Exits 1 when a column is missing or any cell fails.
"""

import sys

import pandas as pd
from renumics.spotlight import Embedding, Image
from renumics.spotlight.data_source import create_datasource
from renumics.spotlight.data_store import DataStore
from renumics.spotlight.dtypes import create_dtype, is_embedding_dtype, is_image_dtype
from renumics.spotlight.plugin_loader import load_plugins

# The article's call: spotlight.show(df, dtype={...}, layout=...).
ARTICLE_DTYPES = {"image": Image, "nn_image": Image, "embedding_ft": Embedding, "embedding.foundation": Embedding}
ARTICLE_COLUMNS = [
    "image",
    "nn_image",
    "label_str",
    "embedding_ft",
    "embedding.foundation",
    "outlier_score_ft",
    "outlier_score_found",
    "nn_id",
    "nn_distance",
    "nn_flag",
]


def check(path: str) -> bool:
    df = pd.read_parquet(path)
    missing = [c for c in ARTICLE_COLUMNS if c not in df.columns]
    if missing:
        print(f"{path}: FAIL, missing columns {missing} (has {list(df.columns)})")
        return False
    # `show` registers the data sources through the plugins, then builds the store from the user's dtypes.
    load_plugins()
    store = DataStore(create_datasource(df), {c: create_dtype(d) for c, d in ARTICLE_DTYPES.items()})
    ok = True
    parts = [f"{len(df)} rows"]
    for column in ("image", "nn_image"):
        if not is_image_dtype(store.dtypes[column]):
            print(f"{path}: FAIL, {column} is {store.dtypes[column]}, not Image")
            return False
        decoded, failed = 0, []
        for i in range(len(df)):
            try:
                blob = store.get_converted_value(column, i, simple=False)
            except Exception as e:  # Spotlight raises its own conversion errors per cell.
                failed.append(f"row {i}: {type(e).__name__} {e}")
                continue
            if blob:
                decoded += 1
            else:
                failed.append(f"row {i}: empty")
        # Which of the two forms the cells take: a file path (image files) or encoded bytes (everything else).
        paths = sum(1 for c in df[column] if isinstance(c, dict) and c.get("path") and not c.get("bytes"))
        parts.append(f"{column} {decoded}/{len(df)} decoded ({paths} as paths, {len(df) - paths} as bytes)")
        if failed:
            ok = False
            print(f"{path}: {column}: {len(failed)} cells fail, first: {failed[0]}")
    for column in ("embedding_ft", "embedding.foundation"):
        dtype = store.dtypes[column]
        if not is_embedding_dtype(dtype):
            print(f"{path}: FAIL, {column} is {dtype}, not Embedding")
            return False
        values = store.get_converted_values(column)
        lengths = {len(v) for v in values}
        if len(lengths) != 1:
            print(f"{path}: FAIL, {column} vectors of lengths {sorted(lengths)}")
            return False
        parts.append(f"{column} {lengths.pop()}-d Embedding")
    flagged = int(df["nn_flag"].sum())
    parts.append(f"nn_flag {flagged}")
    print(f"{path}: {'OK' if ok else 'FAIL'}, " + ", ".join(parts))
    return ok


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    results = [check(p) for p in sys.argv[1:]]
    sys.exit(0 if all(results) else 1)
