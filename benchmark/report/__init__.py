"""Reporting from a run folder: statistics (stats: bootstrap CIs, paired tests, Friedman ranks),
tables (Markdown, CSV, LaTeX), figures (figures, figure_style, overlays; drawn by the forked workers of figure_pool), the report itself
(build, with its settings and per-class sections in sections and the focal-lesion table in focal), the run's stored report inputs (artifacts: predictions, curves, sanity, cases), the
comparison of runs (compare) and cheXlocalize exports (chexlocalize). The paper tables that fit a
width (latex), what the run supports (findings) and how far to trust the metrics (reliability, with
its report section in trust); several trained instances per architecture (instances: means over
instances and images, ranking agreement, verdicts that hold in every instance; their section in
instances_section, the report's opening table in instances_headline)."""
from .build import build_report, load_scores

__all__ = ["build_report", "load_scores"]
