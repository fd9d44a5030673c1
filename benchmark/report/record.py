"""Committed records: a run folder cut down to what `benchmark report` needs, so a record in the
repository rebuilds its own report byte for byte and stays small.

A record keeps the run's tables (the per-image ones compressed, e.g. scores.csv.gz, written with a fixed gzip header
so the same table gives the same bytes), config.toml and manifest.json; no image of the dataset (data
preview, overlay cases, case-browser inputs) and no checkpoints, maps, shard stores or caches. `export_record`
copies them and builds the report in the record; `record_size` is what the size budget checks.
"""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from ..store.files import atomic_path

# files of a run folder that the report reads (build.py and the sections); the optional ones may be absent
TABLES = ("config.toml", "manifest.json", "predictions.csv", "curves.csv", "sanity.csv",
          "stability.csv", "reliance.csv")
# the per-image tables, kept as <name>.gz (a record's files stay small; readers go through table_path);
# the optional ones may be absent
COMPRESSED = ("scores.csv", "target_scores.csv", "curve_ends.csv", "randomised_scores.csv", "sanity_images.csv")
# no X-ray leaves the run folder: the data preview, overlay cases and the case browser's inputs hold
# images of the dataset, so a record has no such folders and its report draws no image figures
FOLDERS: tuple[str, ...] = ()
# per record, every committed file: tables, report.md and the LaTeX and Markdown tables; its figures,
# PDFs and HTML report are rebuilt by `benchmark report` and not committed (.gitignore)
SIZE_BUDGET_MB = 5.0


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
        if not (run_dir / name).exists():
            continue
        gzip_copy(run_dir / name, dest / (name + ".gz"))
        written.append(dest / (name + ".gz"))
    for folder in FOLDERS:
        if (run_dir / folder).is_dir():
            shutil.rmtree(dest / folder, ignore_errors=True)
            shutil.copytree(run_dir / folder, dest / folder)
            written += sorted(p for p in (dest / folder).rglob("*") if p.is_file())
    shutil.rmtree(dest / "report", ignore_errors=True)
    return written


def committed(path: Path, root: Path) -> bool:
    """Whether the repository keeps this file of a record (mirrors .gitignore): no PDF, nothing of
    report/html/ and no figure of the report (tables and text only; `benchmark report` draws them)."""
    rel = path.relative_to(root).parts
    return not (path.suffix in (".pdf", ".png") and "report" in rel[:-1] or "html" in rel[:-1])


def committed_files(dest: Path) -> list[Path]:
    """The files of a record that the repository keeps, sorted."""
    dest = Path(dest)
    root = dest.parent if dest.name == "report" else dest
    return sorted(p for p in dest.rglob("*") if p.is_file() and committed(p, root))


def record_size(dest: Path) -> int:
    """Bytes of the committed files of a record."""
    return sum(p.stat().st_size for p in committed_files(dest))
