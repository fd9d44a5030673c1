"""Committed records: a run folder cut down to what `benchmark report` needs, so a record in the
repository rebuilds its own report byte for byte and stays small.

A record keeps the run's tables (scores compressed as scores.csv.gz, written with a fixed gzip header
so the same table gives the same bytes), config.toml, manifest.json, the overlay cases and the data
preview; not the checkpoints, maps, shard stores or caches, which only a rerun needs. `export_record`
copies them and builds the report in the record; `record_size` is what the size budget checks.
"""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from ..store.files import atomic_path

# files of a run folder that the report reads (build.py and the sections); the optional ones may be absent
TABLES = ("config.toml", "manifest.json", "predictions.csv", "curves.csv", "curve_ends.csv", "sanity.csv",
          "sanity_images.csv", "randomised_scores.csv", "stability.csv", "reliance.csv", "target_scores.csv",
          "data_preview.npz")
COMPRESSED = ("scores.csv",)  # the one large table: kept as scores.csv.gz
FOLDERS = ("cases", "browser")  # the overlay cases (a few images with their maps), the case browser's inputs
# per record, every committed file (tables, report, PNG figures, the HTML report: the COVID-QU-Ex
# CPU record, 80 images x 13 explainers x 2 models, is the largest, its case browser's thumbnails
# about 9 MB of it); the PDF figures are
# not committed (.gitignore): `benchmark report` on the record writes them
SIZE_BUDGET_MB = 25.0
UNCOMMITTED = ("*.pdf",)


def gzip_copy(src: Path, dest: Path) -> None:
    """dest = gzip(src) with mtime 0 and no file name in the header: the same table, the same bytes."""
    with atomic_path(dest) as tmp, open(src, "rb") as fin, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as out:
            shutil.copyfileobj(fin, out)


def table_path(run_dir: Path, name: str) -> Path:
    """The stored table `name` of a run folder or record: name itself, else its .gz (a record)."""
    path = Path(run_dir) / name
    gz = path.with_name(path.name + ".gz")
    return gz if not path.exists() and gz.exists() else path


def export_record(run_dir: Path, dest: Path) -> list[Path]:
    """Copy what `benchmark report` needs from run_dir into dest (created; an existing report/ in dest
    is replaced) and return the files copied. The report itself is built by the caller (build_report)."""
    run_dir, dest = Path(run_dir), Path(dest)
    if not (run_dir / "scores.csv").exists() or not (run_dir / "config.toml").exists():
        raise FileNotFoundError(f"{run_dir} is not a finished run folder (no scores.csv or config.toml)")
    if dest.resolve() == run_dir.resolve():
        raise ValueError(f"the record must be another folder than the run ({run_dir})")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TABLES:
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, dest / name)
            written.append(dest / name)
    for name in COMPRESSED:
        gzip_copy(run_dir / name, dest / (name + ".gz"))
        written.append(dest / (name + ".gz"))
    for folder in FOLDERS:
        if (run_dir / folder).is_dir():
            shutil.rmtree(dest / folder, ignore_errors=True)
            shutil.copytree(run_dir / folder, dest / folder)
            written += sorted(p for p in (dest / folder).rglob("*") if p.is_file())
    shutil.rmtree(dest / "report", ignore_errors=True)
    return written


def committed_files(dest: Path) -> list[Path]:
    """The files of a record that the repository keeps (all but UNCOMMITTED), sorted."""
    return sorted(p for p in Path(dest).rglob("*")
                  if p.is_file() and not any(p.match(pattern) for pattern in UNCOMMITTED))


def record_size(dest: Path) -> int:
    """Bytes of the committed files of a record."""
    return sum(p.stat().st_size for p in committed_files(dest))
