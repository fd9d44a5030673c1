"""Render the README's grid of phantom examples: python docs/make_phantom_figure.py [out.png]"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cxr_xai_bench.datasets.phantom import PhantomDataset  # noqa: E402


def main(out: str = "docs/phantom.png", size: int = 128, n: int = 6) -> None:
    ds = PhantomDataset("train", size=size, seed=0)
    fig, axes = plt.subplots(2, n, figsize=(2 * n, 4.3))
    for j in range(n):
        s = ds[j]
        for row in range(2):
            ax = axes[row][j]
            ax.imshow(s.image[0], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1][j].contour(s.lung_mask, [0.5], colors="cyan", linewidths=0.6)
        if s.lesion_mask.any():
            axes[1][j].contour(s.lesion_mask, [0.5], colors="red", linewidths=0.9)
        axes[0][j].set_title(("pneumonia" if s.label else "normal") + f"\n{s.id}", fontsize=7)
    axes[1][0].set_ylabel("lung (cyan), lesion (red)", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=72)


if __name__ == "__main__":
    main(*sys.argv[1:2])
