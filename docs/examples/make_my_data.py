"""Make a small data set in the layout of "your data": PNG X-rays, PNG lesion and lung masks, and a
manifest CSV, so the "Your data" tutorial can be followed without downloading anything.

    python docs/examples/make_my_data.py my-data          # writes my-data/manifest.csv and my-data/*/...
    python -m benchmark run --preset smoke --config docs/examples/my-data.toml

The images are phantom X-rays (`cxr_xai_bench.datasets.phantom.render`) saved as 8-bit PNG files, as
your own would be; replace them with your files and keep the manifest's columns.
"""
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cxr_xai_bench.datasets.phantom import render

SPLITS = {"train": 48, "val": 16, "test": 16}  # images per split, half of them pneumonia
SIZE = 128


def save(array, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return str(path.relative_to(path.parents[1]))  # relative to the manifest's folder


def main(out: str = "my-data") -> Path:
    root = Path(out)
    rows = []
    for split, n in SPLITS.items():
        for i in range(n):
            label = i % 2
            s = render(seed=0, split=split, index=i, size=SIZE, label=label)
            name = f"{split}-{i:03d}.png"
            rows.append({
                "image": save((s["image"].numpy() * 255).round(), root / "images" / name),
                "label": "pneumonia" if label else "normal",
                "split": split,
                # a normal image's mask is empty (a true negative); leave the cell empty where no
                # expert drew one, and the image is never scored for localisation
                "mask": save(s["lesion_mask"].numpy() * 255, root / "masks" / name),
                "lung_mask": save(s["lung_mask"].numpy() * 255, root / "lungs" / name),
                "patient": f"p{split}{i // 2:03d}",
            })
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} images and {root / 'manifest.csv'}")
    return root / "manifest.csv"


if __name__ == "__main__":
    main(*sys.argv[1:2])
