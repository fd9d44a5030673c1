"""Make the inputs of the "evaluate your own model" example, as a user would bring them: a classifier
trained elsewhere, an annotated test set and saliency maps made elsewhere. Nothing is downloaded.

    python docs/examples/evaluate-your-model/make_files.py my-evaluation
    python -m benchmark evaluate --config docs/examples/evaluate-your-model/config.toml

writes, in the folder given (default my-evaluation/, which config.toml names, relative to where you
run both commands):

- images/case-NNN.png: grey 8-bit X-rays (phantoms, `cxr_xai_bench.datasets.phantom.render`), half
  of them pneumonia; masks/case-NNN.png: their lesion masks, 0 and 255 (empty for a normal image);
- manifest.csv: image, label, split (all "test"), mask; paths relative to the manifest's folder;
- resnet50.pt: torchvision's ResNet50 with a two-class head, saved as a DataParallel state_dict
  (keys `module.conv1.weight`, ..., `module.fc.bias`), as a training script often saves it. Its
  weights are random here; yours are trained;
- maps/case-NNN.npy: one saliency map per image id (the image file's stem), 2-D, at the run's image
  size (config.toml's data.size). Here they are a blurred copy of the lesion mask plus noise, standing
  in for maps your own toolbox made.
"""
import csv
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from cxr_xai_bench.datasets.phantom import render

IMAGES = 8  # half pneumonia, half normal
SIZE = 64   # the images' size, and the maps' (data.size in config.toml)


def save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def blur(a: np.ndarray, passes: int = 3) -> np.ndarray:
    for _ in range(passes):  # a 3x3 box filter, repeated
        p = np.pad(a, 1, mode="edge")
        a = sum(p[i:i + a.shape[0], j:j + a.shape[1]] for i in range(3) for j in range(3)) / 9
    return a


def main(out: str = "my-evaluation") -> Path:
    root = Path(out)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(IMAGES):
        label = i % 2
        s = render(seed=0, split="test", index=i, size=SIZE, label=label)
        image_id = f"case-{i:03d}"
        lesion = s["lesion_mask"].numpy()
        save_png((s["image"].numpy() * 255).round(), root / "images" / f"{image_id}.png")
        save_png(lesion * 255, root / "masks" / f"{image_id}.png")
        rows.append({"image": f"images/{image_id}.png", "label": "pneumonia" if label else "normal",
                     "split": "test", "mask": f"masks/{image_id}.png"})
        saliency = blur(lesion.astype(np.float32)) + 0.1 * rng.random((SIZE, SIZE), dtype=np.float32)
        (root / "maps").mkdir(parents=True, exist_ok=True)
        np.save(root / "maps" / f"{image_id}.npy", saliency.astype(np.float32))
    with open(root / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None, num_classes=2)  # train it; here it stays random
    torch.save(torch.nn.DataParallel(model).state_dict(), root / "resnet50.pt")
    print(f"wrote {IMAGES} images, masks and maps, {root / 'manifest.csv'} and {root / 'resnet50.pt'}")
    return root


if __name__ == "__main__":
    main(*sys.argv[1:2])
