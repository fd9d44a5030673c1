"""A procedural chest radiograph phantom with planted pneumonia-like opacities and exact masks.

Every sample is a pure function of (seed, split, index): random draws come from a generator
seeded by a SeedSequence of those three, and every random field is drawn on a fixed coarse grid
and resampled, so the same sample rendered at 64 px and at 224 px shows the same anatomy.

The class signal is the opacity alone: anatomy, contrast, nodules and soft-tissue shadows are
drawn from the same distributions for both classes, so a classifier that separates them has to
look at the lesion.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .imageio import DEFAULT_RESIZE, check_resize
from .registry import register_dataset
from .sample import Sample

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def _generator(seed: int, split: str, index: int, stream: int = 0) -> torch.Generator:
    if split not in SPLIT_CODES:
        raise ValueError(f"unknown phantom split {split!r}; allowed: {sorted(SPLIT_CODES)}")
    state = np.random.SeedSequence([seed, SPLIT_CODES[split], index, stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


class _Draw:
    """Random draws for one sample, from its own generator."""

    def __init__(self, gen: torch.Generator, size: int):
        self.gen = gen
        self.size = size

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand((), generator=self.gen).item()

    def field(self, grid: int) -> torch.Tensor:
        """Smooth noise in about [-1,1] at output resolution, drawn on a grid x grid lattice."""
        coarse = torch.randn(1, 1, grid, grid, generator=self.gen)
        coarse = coarse / (coarse.std() + 1e-6) * 0.5
        return F.interpolate(coarse, size=(self.size, self.size), mode="bicubic", align_corners=True)[0, 0]

    def pixel_noise(self) -> torch.Tensor:
        return torch.randn(self.size, self.size, generator=self.gen)


def _soft(d: torch.Tensor, width: float) -> torch.Tensor:
    """Soft inside-indicator of a signed distance (negative inside), edge about `width` wide."""
    return torch.sigmoid(-d / width)


def _ellipse(y, x, cy, cx, ry, rx, angle=0.0):
    c, s = math.cos(angle), math.sin(angle)
    dy, dx = y - cy, x - cx
    u, v = c * dx + s * dy, -s * dx + c * dy
    return torch.sqrt((u / rx) ** 2 + (v / ry) ** 2) - 1.0


def render(seed: int, split: str, index: int, size: int, label: int) -> dict[str, torch.Tensor]:
    """Render one phantom: image (H,W) in [0,1], lung mask, lesion mask (all False for normals).

    Lesions draw from their own random stream, so render(..., label=0) of a pneumonia sample is
    the same X-ray with the lesions removed: an exact counterfactual.
    """
    d = _Draw(_generator(seed, split, index), size)
    les = _Draw(_generator(seed, split, index, stream=1), size)
    lin = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(lin, lin, indexing="ij")
    edge = 1.0 / 32  # fixed in normalised units (a pixel at 64 px) so anatomy is the same at any size

    # thorax and soft tissue
    body = _soft(_ellipse(y, x, d.uniform(0.0, 0.1), d.uniform(-0.04, 0.04), d.uniform(0.9, 1.05), d.uniform(0.8, 0.92)), 3 * edge)
    img = 0.04 + 0.5 * body

    # lungs: two tilted ellipses cut by the diaphragm domes
    tilt = d.uniform(-0.08, 0.08)
    lungs = torch.zeros_like(x)
    dome = torch.zeros_like(x)
    for side in (-1.0, 1.0):
        cx = side * d.uniform(0.33, 0.42)
        lung = _soft(_ellipse(y, x, d.uniform(-0.12, 0.0), cx, d.uniform(0.52, 0.62), d.uniform(0.23, 0.3), side * (0.12 + tilt)), edge)
        base = d.uniform(0.42, 0.55)
        dome_y = base - d.uniform(0.1, 0.2) * (1 - ((x - cx) / 0.32).clamp(-1, 1) ** 2)
        below = _soft(dome_y - y, edge)  # 1 below the dome
        lungs = torch.maximum(lungs, lung * (1 - below))
        dome = torch.maximum(dome, below * (x - cx).abs().lt(0.4).float())
    heart = _soft(_ellipse(y, x, d.uniform(0.22, 0.32), d.uniform(0.08, 0.16), d.uniform(0.24, 0.3), d.uniform(0.26, 0.32), d.uniform(-0.3, 0.1)), 2 * edge)
    mediastinum = _soft((x - d.uniform(-0.03, 0.03)).abs() - d.uniform(0.09, 0.12) - 0.08 * (y + 1), edge)
    lungs = lungs * (1 - heart) * (1 - mediastinum)
    air = d.uniform(0.24, 0.42) * (1.0 - 0.25 * (y + 0.7).clamp(0, 1.2))  # thicker tissue lower down
    img = img - air * lungs * body

    # lung markings: vessel-like texture that thins towards the periphery
    hilum = torch.exp(-((x.abs() - 0.18) ** 2 + (y + 0.05) ** 2) / 0.12)
    vessels = (d.field(24).abs() < 0.12).float() * (0.05 + 0.06 * hilum)
    img = img + vessels * lungs

    # bones: spine with vertebrae, ribs, clavicles
    spine = _soft((x - d.uniform(-0.02, 0.02)).abs() - 0.07, edge) * body
    vert = 0.5 + 0.5 * torch.cos((y + d.uniform(0, 1)) * math.pi * d.uniform(9, 11))
    img = img + spine * (0.12 + 0.05 * vert)
    rib_phase = d.uniform(-0.04, 0.04)
    rib_slope = d.uniform(0.35, 0.55)
    ribs = torch.zeros_like(x)
    for k in range(10):
        y0 = -0.78 + 0.16 * k + rib_phase
        centre = y0 + rib_slope * x.abs() ** 1.5 - 0.15 * x.abs()
        ribs = torch.maximum(ribs, _soft((y - centre).abs() - 0.022 - 0.006 * k ** 0.5, edge))
    ribs = ribs * (x.abs() > 0.1).float() * body
    img = img + d.uniform(0.09, 0.13) * ribs
    for side in (-1.0, 1.0):
        cy = d.uniform(-0.74, -0.66)
        clav = _soft((y - (cy - 0.12 * (x * side).clamp(min=0))).abs() - 0.03, edge)
        img = img + 0.12 * clav * ((x * side) > 0.06).float() * ((x * side) < 0.6).float()

    # heart, mediastinum and abdomen below the diaphragm are dense
    img = img + 0.15 * heart * body + 0.1 * mediastinum * body + 0.12 * dome * body

    # distractors in both classes: calcified nodules (small, sharp) and breast shadows (broad)
    for _ in range(int(d.uniform(0, 3))):
        r = d.uniform(0.015, 0.035)
        img = img + 0.15 * _soft(_ellipse(y, x, d.uniform(-0.5, 0.4), d.uniform(-0.7, 0.7), r, r), edge)
    if d.uniform(0, 1) < 0.5:
        for side in (-1.0, 1.0):
            img = img + 0.06 * _soft(_ellipse(y, x, 0.45, side * 0.45, 0.25, 0.35), 0.08)

    lung_mask = lungs > 0.5
    lesion_mask = torch.zeros_like(lung_mask)
    if label == 1:
        n_lesions = 1 + int(les.uniform(0, 1.7))
        # centres drawn in continuous coordinates (the same at every resolution), kept if in a lung
        tries = torch.rand(64, 2, generator=les.gen) * 2 - 1
        pix = ((tries + 1) / 2 * (size - 1)).round().long()
        inside = tries[lung_mask[pix[:, 0], pix[:, 1]]]
        if len(inside) == 0:
            raise RuntimeError(f"phantom {split}/{index}: no lesion centre found inside the lungs")
        for k in range(n_lesions):
            cy, cx = inside[k % len(inside)].tolist()
            r = les.uniform(0.17, 0.3)
            shape = _ellipse(y, x, cy, cx, r * les.uniform(0.7, 1.3), r, les.uniform(0, math.pi)) + 0.6 * les.field(10)
            blob = _soft(shape, 2 * edge) * lungs
            # patchy consolidation: a coarse mottled density, denser towards the centre
            texture = (0.6 + 0.5 * les.field(16)).clamp(0.15, 1.0) * (1 - 0.3 * (shape + 1).clamp(0, 1))
            img = img + les.uniform(0.3, 0.45) * blob * texture
            lesion_mask |= blob > 0.5

    # global contrast and noise, equal in both classes
    img = (img + 0.03 * d.field(6) * body) * d.uniform(0.85, 1.1) + d.uniform(-0.04, 0.04)
    img = img + 0.015 * d.pixel_noise()
    return {"image": img.clamp(0, 1).float(), "lung_mask": lung_mask, "lesion_mask": lesion_mask}


@register_dataset("phantom")
class PhantomDataset:
    """Balanced phantom split: even indices normal, odd indices pneumonia."""

    cacheable = False  # rendering (about 1.5 ms an image at 64 px) is cheaper than a cache round trip

    def __init__(self, split: str = "test", size: int = 64, seed: int = 0, n: int = 10_000,
                 resize: str = DEFAULT_RESIZE, mask_values: list[int] | None = None):
        check_resize(resize)  # rendered square at `size`: every mode gives the same image
        if mask_values:
            raise ValueError(f"data.mask_values {mask_values} does not apply to the phantom: its masks are drawn, "
                             f"not read from files")
        if n <= 0:
            raise ValueError(f"phantom split {split!r} needs n > 0, got {n}")
        if size < 32:
            raise ValueError(f"phantom size must be at least 32 px, got {size}")
        _generator(seed, split, 0)  # validates the split name
        self.split, self.n, self.size, self.seed = split, n, size, seed

    def __len__(self) -> int:
        return self.n

    def labels(self) -> list[int]:
        return [i % 2 for i in range(self.n)]

    def index_of(self, sample_id: str) -> int | None:
        """The index of `sample_id` in this split, None for another split's id."""
        prefix = f"phantom-{self.split}-"
        if not sample_id.startswith(prefix) or not sample_id[len(prefix):].isdigit():
            return None
        index = int(sample_id[len(prefix):])
        return index if 0 <= index < self.n else None

    def counterfactual(self, sample_id: str) -> torch.Tensor | None:
        """The image (1,H,W) of sample `sample_id` of this split with its lesions rendered away (the same
        X-ray: lesions draw from their own stream), None for a normal image or another split's id."""
        prefix = f"phantom-{self.split}-"
        if not sample_id.startswith(prefix):
            return None
        index = int(sample_id[len(prefix):])
        if index % 2 == 0 or not 0 <= index < self.n:
            return None
        return render(self.seed, self.split, index, self.size, 0)["image"][None]

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.n:
            raise IndexError(f"phantom index {index} out of range 0..{self.n - 1}")
        label = index % 2
        r = render(self.seed, self.split, index, self.size, label)
        return Sample(
            image=r["image"][None],
            label=label,
            lesion_mask=r["lesion_mask"],
            lung_mask=r["lung_mask"],
            id=f"phantom-{self.split}-{index:05d}",
            metadata={"source": "phantom", "split": self.split, "seed": self.seed},
        )
