"""How a run's time and memory grow with the number of test images and the image size.

    python -m benchmark.speed.scaling --preset smoke --images 4 8 16 --sizes 32 48 64 --out scaling.csv

Each point is a fresh run in its own subprocess (so peak memory is that run's own): the preset with
data.limit.test and data.size set, training data left as the preset has it but scaled with the size,
every stage computed (no resume). Per point: wall seconds, the seconds of each stage from the run's
manifest, and the peak resident memory of the run's process (getrusage of the child).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_point(preset: str, images: int, size: int, extra: list[str], workdir: Path) -> dict:
    out = workdir / f"{preset}-{images}img-{size}px"
    cmd = [sys.executable, "-m", "benchmark", "run", "--preset", preset, "--out", str(out), "--no-resume",
           "--set", f"data.limit.test={images}", "--set", f"data.size={size}", "--set", 'data.cache_dir=""']
    for s in extra:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    with open(workdir / f"{out.name}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TQDM_DISABLE": "1"})
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak memory alone
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}); log: {workdir / (out.name + '.log')}")
    timings = json.loads((out / "manifest.json").read_text())["timings_s"]
    return {"preset": preset, "images": images, "size": size, "wall_s": round(wall, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
            **{f"{k}_s": round(v, 2) for k, v in timings.items()}}


def fit_exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y on log x: time ~ x^slope (1: linear)."""
    import numpy as np
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="smoke")
    p.add_argument("--images", type=int, nargs="+", default=[4, 8, 16], help="test-set sizes (at the first --sizes)")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 48, 64], help="image sizes (at the first --images)")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", help="write the points as CSV")
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for images in a.images:
            rows.append({"vary": "images", **run_point(a.preset, images, a.sizes[0], a.extra, Path(tmp))})
        for size in a.sizes[1:]:
            rows.append({"vary": "size", **run_point(a.preset, a.images[0], size, a.extra, Path(tmp))})
    by_images = [r for r in rows if r["vary"] == "images"]
    by_size = [rows[0], *(r for r in rows if r["vary"] == "size")]
    for r in rows:
        print(f"{r['images']:>4} images {r['size']:>4} px: {r['wall_s']:8.1f} s wall, peak RSS {r['peak_rss_mb']} MB")
    if len(by_images) > 1:
        print(f"wall time ~ images^{fit_exponent([r['images'] for r in by_images], [r['wall_s'] for r in by_images]):.2f}")
    if len(by_size) > 1:
        print(f"wall time ~ size^{fit_exponent([r['size'] for r in by_size], [r['wall_s'] for r in by_size]):.2f}")
    if a.out:
        keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in rows[0], k))
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
