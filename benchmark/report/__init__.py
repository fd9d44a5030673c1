"""Reporting from a run folder: statistics (stats: bootstrap CIs, paired tests, Friedman ranks),
tables (Markdown, CSV, LaTeX), figures (figures, figure_style, overlays), the report itself
(build), the run's stored report inputs (artifacts: predictions, curves, sanity, cases), the
comparison of runs (compare) and cheXlocalize exports (chexlocalize)."""
from .build import build_report, load_scores

__all__ = ["build_report", "load_scores"]
