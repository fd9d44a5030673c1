import numpy as np
import pandas as pd

from benchmark.report.latex import leaderboard_tex
from benchmark.report.tables import leaderboard_markdown
from benchmark.report.stats import paired_tests, summarise


def _scores(gap):
    rng = np.random.default_rng(0)
    base = rng.random(40)
    rows = []
    for name, values in (("good", base + gap), ("plain", base), ("noise", rng.random(40))):
        rows += [dict(dataset="d", split="s", model="m", explainer=name, metric="relevance_mass", image_id=str(i), value=v)
                 for i, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_dagger_marks_a_significant_lead_only():
    for gap, marked in ((0.05, True), (0.0, False)):
        scores = _scores(gap)
        summary, tests = summarise(scores, 100), paired_tests(scores)
        md = leaderboard_markdown(summary, tests=tests)
        assert ("†" in md.split("\n", 1)[1]) == marked
        tex = leaderboard_tex(summary, tests)
        assert ("\\textbf" in tex) and (("\\dagger" in tex.split("\\toprule")[1]) == marked)
        assert "Relevance\\\\mass" in tex and tex.count("\\begin{tabular}{l") == 1  # header: two lines


import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import tomli_w  # noqa: E402

EXPLAINERS = ("gradcam", "random", "oracle")
METRICS = ("deletion_auc", "relevance_mass", "seconds_per_image")


def _run_dir(tmp: Path, extras: bool = True) -> Path:
    """A tiny run folder written the way the runner writes one (scores, config, manifest, extras)."""
    from benchmark.report import artifacts as rd
    from benchmark.run.config import load_config
    rng = np.random.default_rng(0)
    n, size = 8, 16
    ids = [f"img{i}" for i in range(n)]
    rows = []
    for model in ("tiny_a", "tiny_b"):
        for k, e in enumerate(EXPLAINERS):
            for metric in METRICS:
                v = rng.random(n) * (0.01 if metric == "seconds_per_image" else 1) + 0.6 * k
                if metric == "relevance_mass":
                    v[:3] = np.nan  # normal X-rays: not scored
                rows += [dict(dataset="phantom", split="test", model=model, explainer=e, metric=metric, image_id=i, value=x)
                         for i, x in zip(ids, v)]
    tmp.mkdir(parents=True, exist_ok=True)
    scores = pd.DataFrame(rows)
    scores.to_csv(tmp / "scores.csv", index=False)
    cfg = load_config(preset="smoke").to_dict()
    cfg["models"]["names"], cfg["explain"]["names"], cfg["metrics"]["names"] = ["tiny_a", "tiny_b"], list(EXPLAINERS), list(METRICS)
    cfg["report"]["bootstrap"] = 50
    (tmp / "config.toml").write_text(tomli_w.dumps(cfg))
    (tmp / "manifest.json").write_text(json.dumps({"classifiers": {"tiny_a": {"val": {"accuracy": 0.9}, "test": {"auroc": 0.8}}},
                                                   "data_counts": {"train": 16, "val": 8, "test": n}, "device": "cpu",
                                                   "versions": {"torch": "x"}, "timings_s": {"data": 1.0}}))
    if not extras:
        return tmp
    curves, sanity, preds, ends = [], [], [], []
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    for model in ("tiny_a", "tiny_b"):
        share = np.where(labels == 1, [0.0, 0.0, 0.0, 0.1, 0.2, 0.6, 0.7, 0.3], 0.0)  # 3 focal lesions of 5
        preds.append(rd.predictions_frame("phantom", "test", model, ids, labels, rng.random(n), share))
        for e in EXPLAINERS:
            curve = np.sort(rng.random((n, 5)))[:, ::-1]
            curves.append(rd.summarise_curves("phantom", "test", model, e, "deletion_auc", curve, np.linspace(0, 1, 5), 50))
            ends.append(rd.curve_ends_frame("phantom", "test", model, e, "deletion_auc", ids, curve))
            sanity.append(rd.summarise_sanity("phantom", "test", model, e, "randomisation_ssim", rng.random((n, 3)), ["fc", "conv2", "conv1"]))
        images = rng.random((n, size, size)).astype(np.float32)
        masks = np.zeros((n, size, size), bool)
        masks[3:, 4:9, 4:9] = True
        maps = {e: rng.random((n, size, size)).astype(np.float32) for e in EXPLAINERS}
        rd.write_cases(tmp / "cases" / f"{model}.npz", images, masks, ids, maps, {e: e == "random" for e in EXPLAINERS},
                       scores, model, "relevance_mass", 2)
    # the test split's preview images, as the runner stores them (benchmark/run/data_summary.py)
    np.savez_compressed(tmp / "data_preview.npz", images=(images[:4] * 255).astype(np.uint8), lesion_masks=masks[:4],
                        has_mask=np.ones(4, bool), lung_masks=np.zeros((4, size, size), bool), labels=labels[:4],
                        ids=np.array(ids[:4], dtype=str))
    rd.write_curves(tmp / "curves.csv", curves)
    rd.write_curve_ends(tmp / "curve_ends.csv", ends)
    rd.write_sanity(tmp / "sanity.csv", sanity)
    rd.write_predictions(tmp / "predictions.csv", preds)
    # the lesion-reliance stage's table (benchmark/run/reliance.py): the pneumonia images, 4 of 5 reliant
    pd.DataFrame([dict(dataset="phantom", split="test", model=m, image_id=i, p_image=0.9, p_counterfactual=p,
                       drop=0.9 - p, reliant=p <= 0.5) for m in ("tiny_a", "tiny_b")
                  for i, p in zip(ids[3:], (0.1, 0.2, 0.3, 0.4, 0.8))]).to_csv(tmp / "reliance.csv", index=False)
    return tmp


FIGURES = ["main-figure", "main-figure-column", "leaderboard-localisation", "ranks", "cd-tiny_a", "cd-tiny_b", "runtime",
           "curves", "sanity", "roc", "overlay-tiny_a",
           "cases-tiny_a", "cases-tiny_b"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from benchmark.report.build import build_report
    run = _run_dir(tmp_path_factory.mktemp("run"))
    md = build_report(run, figure_workers=2)  # drawn by two forked workers
    return run, md


def test_build_report_writes_every_table_and_figure(built):
    run, md = built
    rep = run / "report"
    for stem in FIGURES:
        for ext in ("png", "pdf"):
            assert (rep / f"{stem}.{ext}").stat().st_size > 1000, f"{stem}.{ext}"
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex", "leaderboard_all.md", "leaderboard_all.tex",
                 "paired_tests.csv", "friedman.csv", "ranks.csv", "ranks.md", "report.md", "per_class.csv", "focal_leaderboard.csv",
                 "findings.csv", "headroom.csv", "metric_agreement.csv", "discrimination.csv", "rank_first.csv", "metric_agreement.png"):
        assert (rep / name).stat().st_size > 0, name
    report = (rep / "report.md").read_text()
    for needle in ("## Classifiers", "## Data", "## Environment", "## Leaderboard", "### All models side by side",
                   "Nemenyi", "(roc.png)", "(cases-tiny_b.png)", "relevance_mass 18 of 48", "```toml",
                   "## What was measured", "model output explained: `tiny_a` raw", "explain target: `label`",
                   "`deletion_auc` fill `mean`, order `morf`", "trained on `train`, selected on `val`",
                   "### tiny_a on phantom: faithfulness on the pneumonia images", "| explainer | Deletion AUC ↓ |",
                   "## How far to trust these metrics", "(metric_agreement.png)", "### What the numbers justify: tiny_a",
                   "- `relevance_mass`: ", "| tiny_a | gradcam |", "## Focal lesions", "(3 of 5 lesion images) and the normals (3)",
                   "## Headroom of the curve metrics", "| tiny_a | deletion_auc | pneumonia | 5 |",
                   "## Known truth: what the models use", "| tiny_a | 5 | 4 (80%", "## What was explained"):
        assert needle in report, needle
    assert "## Not in this report" not in report
    assert report.split("\n## ")[1].startswith("What this run supports")  # the report opens with the findings
    assert md.startswith("Cells: mean") and "### tiny_a on phantom: Localisation" in md


def test_report_rebuild_is_byte_identical(built, tmp_path):
    """Also across figure workers: the fixture's figures came from worker processes, these from this one."""
    from benchmark.report.build import build_report
    run, _ = built
    copy = tmp_path / "again"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report"))
    build_report(copy, figure_workers=1)
    # every file, the HTML report's folder (report/html/) included
    files = lambda rep: sorted(str(p.relative_to(rep)) for p in rep.rglob("*") if p.is_file())  # noqa: E731
    first = files(run / "report")
    assert first == files(copy / "report") and "html/index.html" in first
    for name in first:
        assert (run / "report" / name).read_bytes() == (copy / "report" / name).read_bytes(), name


def test_missing_optional_files_drop_their_figures_with_a_note(tmp_path):
    from benchmark.report.build import build_report
    run = _run_dir(tmp_path, extras=False)
    (run / "manifest.json").unlink()
    build_report(run)
    report = (run / "report" / "report.md").read_text()
    for needle in ("no `curves.csv`", "no `sanity.csv`", "no `predictions.csv`", "no `cases/<model>.npz`", "no `manifest.json`"):
        assert needle in report, needle
    assert not (run / "report" / "roc.png").exists() and (run / "report" / "main-figure.png").exists()


def test_build_report_names_what_is_missing(tmp_path):
    from benchmark.report.build import build_report
    with pytest.raises(FileNotFoundError, match="config.toml"):
        build_report(tmp_path)


def test_tables_by_category_combined_and_ranks(built):
    run, _ = built
    rep = run / "report"
    tex = (rep / "leaderboard.tex").read_text()
    # 2 models x 3 categories, booktabs rules in each; compact cells mean +- CI half-width, n in its own row
    assert tex.count("\\begin{table*}") == 6 and tex.count("\\toprule") == 6 and "$n$ images" in tex
    assert "$\\pm$" in tex and "declared width: \\textwidth" in tex
    combined = (rep / "leaderboard_all.md").read_text()
    # one table per category, both models side by side (display names; runtime in s: oracle's ~1.2 s)
    assert re.findall(r"^#### (.+)$", combined, re.M) == ["Faithfulness", "Localisation", "Runtime"]
    assert "| explainer | tiny_a: Time per image (s) ↓ | tiny_b: Time per image (s) ↓ |" in combined
    for table in combined.split("####")[1:]:
        # header, one row per explainer, and the row that opens the baselines' block (random, oracle)
        assert table.count("\n| ") == 1 + len(EXPLAINERS) + 1
        assert table.index("| Grad-CAM |") < table.index("| *Baselines (reference)* |") < table.index("| Oracle (expert mask) |")
    alltex = (rep / "leaderboard_all.tex").read_text()
    assert "\\multicolumn{3}{c}{\\begin{tabular}[b]{@{}c@{}}tiny\\_a\\end{tabular}}" in alltex and "\\cmidrule(lr){2-4}" in alltex
    ranks = pd.read_csv(rep / "ranks.csv")
    # oracle's values are offset highest: best (rank 1) for relevance_mass, worst for deletion_auc (lower is better)
    r = ranks[(ranks.model == "tiny_a")].set_index(["metric", "explainer"])["avg_rank"]
    assert r[("relevance_mass", "oracle")] < r[("relevance_mass", "gradcam")]
    assert r[("deletion_auc", "oracle")] > r[("deletion_auc", "gradcam")]


def test_latex_compiles_when_an_engine_is_present(built, tmp_path, pdflatex):
    """Every .tex of the report fits its declared width (the pdflatex fixture fails instead of skipping in CI)."""
    from benchmark.report.latex import compile_check
    run, _ = built
    for p in sorted((run / "report").glob("*.tex")):
        assert compile_check(p.read_text(), tmp_path / p.stem) == [], p.name


def test_explainer_styles_are_fixed_by_name():
    from benchmark.report.figure_style import explainer_styles
    a, b = explainer_styles(["random", "gradcam"]), explainer_styles(["gradcam", "lrp", "random", "zzz_new"])
    assert a["gradcam"] == b["gradcam"] and a["random"] == b["random"]
    from cxr_xai_bench.explainers import EXPLAINERS as REGISTERED
    styles = explainer_styles(sorted(REGISTERED))
    assert len({(tuple(s["color"]), s["marker"]) for s in styles.values()}) == len(styles)
    methods = [n for n in styles if n not in ("center", "lung_prior", "mask_prior", "oracle", "random", "sobel")]
    assert len({tuple(styles[n]["color"]) for n in methods}) == len(methods)  # every method its own colour


def test_pick_cases_best_median_worst():
    from benchmark.report.artifacts import pick_cases
    s = pd.Series([0.5, np.nan, 0.9, 0.1, 0.5], index=["a", "b", "c", "d", "e"])
    assert pick_cases(s) == [("best", "c", 0.9), ("median", "a", 0.5), ("worst", "d", 0.1)]
    assert pick_cases(pd.Series([np.nan], index=["a"])) == []


def test_summarise_sanity_counts_finite_values_per_stage():
    from benchmark.report.artifacts import summarise_sanity
    c = np.array([[1.0, np.nan], [0.5, 0.2], [0.0, 0.4]])
    df = summarise_sanity("d", "s", "m", "e", "x", c, ["fc", "conv"])
    assert df["n"].tolist() == [3, 2] and df["mean"].tolist() == pytest.approx([0.5, 0.3])
    assert df["sd"].tolist() == pytest.approx([np.std(c[:, 0], ddof=1), np.std([0.2, 0.4], ddof=1)])
    with pytest.raises(ValueError, match="layer names"):
        summarise_sanity("d", "s", "m", "e", "x", c, ["fc"])


def test_summarise_curves_drops_nonfinite_rows_and_checks_fractions():
    from benchmark.report.artifacts import summarise_curves
    c = np.array([[1.0, 0.5, 0.0], [1.0, np.nan, 0.2], [0.8, 0.3, 0.1]])
    df = summarise_curves("d", "s", "m", "e", "deletion_auc", c, [0, 0.5, 1], 100)
    assert (df["n"] == 2).all() and df["mean"].tolist() == pytest.approx([0.9, 0.4, 0.05])
    assert (df["ci_low"] <= df["mean"]).all() and (df["mean"] <= df["ci_high"]).all()
    one = summarise_curves("d", "s", "m", "e", "deletion_auc", c[:1], [0, 0.5, 1])
    assert one["sd"].isna().all() and one["ci_low"].isna().all() and one["mean"].tolist() == [1.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="3 steps but 2 fractions"):
        summarise_curves("d", "s", "m", "e", "deletion_auc", c, [0, 1])


def test_load_curves_reads_the_runner_interim_format(tmp_path):
    from benchmark.report.artifacts import load_curves, load_predictions
    pd.DataFrame({"dataset": "d", "model": "m", "explainer": "e", "metric": ["deletion_auc"] * 2 + ["randomisation_ssim"] * 2,
                  "step": [0, 1, 0, 1], "x": ["0.0", "1.0", "fc", "conv1"], "mean": [1.0, 0.2, 0.9, 0.1],
                  "sd": [0.1, 0.1, 0.2, 0.2], "n": [4, 4, 4, 4]}).to_csv(tmp_path / "curves.csv", index=False)
    curves, sanity = load_curves(tmp_path / "curves.csv", "d", "test")
    assert curves["fraction"].tolist() == [0.0, 1.0] and curves["ci_high"].iloc[0] == pytest.approx(1.0 + 1.96 * 0.1 / 2)
    assert sanity["layer"].tolist() == ["fc", "conv1"] and sanity["split"].iloc[0] == "test"
    pd.DataFrame({"model": "m", "image_id": ["1", "2"], "label": [0, 1], "prob_pneumonia": [0.2, 0.7]}).to_csv(
        tmp_path / "predictions.csv", index=False)
    assert load_predictions(tmp_path / "predictions.csv", "d", "test")["dataset"].tolist() == ["d", "d"]
    assert load_predictions(tmp_path / "nope.csv", "d", "test") is None
