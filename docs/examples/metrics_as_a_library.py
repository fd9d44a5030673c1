"""The benchmark's metrics as a library: score the maps of any torch classifier that returns logits.

Run it from anywhere once cxr-xai-bench is installed: `python docs/examples/metrics_as_a_library.py`.
It builds a tiny classifier and four random 32 x 32 grey images with lesion masks, explains them
with plain gradients, and prints one row per image and metric.
"""
import torch
from torch import nn

from benchmark.metrics import score_maps

torch.manual_seed(0)
# any classifier: (N,1,H,W) -> logits (N,C)
model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                      nn.Linear(64, 2)).eval()
images = torch.rand(4, 1, 32, 32)
targets = torch.tensor([1, 0, 1, 1])
masks = torch.zeros(4, 32, 32, dtype=torch.bool)
masks[:, 8:20, 10:22] = True
masks[1] = False  # a normal image: localisation metrics are NaN (undefined) for it

# the maps to score: here plain input gradients of the target logit, (N,H,W)
x = images.clone().requires_grad_(True)
model(x).gather(1, targets[:, None]).sum().backward()
maps = x.grad[:, 0].abs()

table = score_maps(model, images, targets, maps, masks,
                   metrics=["deletion_auc", "insertion_auc", "pointing_game", "relevance_mass", "iou"],
                   params={"deletion_auc": {"steps": 8}, "insertion_auc": {"steps": 8}})
print(table.to_string(index=False))
print(table.groupby("metric")["value"].mean())
