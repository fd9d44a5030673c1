"""The HTML report (benchmark/report/html_report.py): a self-contained folder that rebuilds byte for
byte, and, opened from disk in headless Chromium (the system's `chromium` driven by Playwright; the
`chromium` fixture skips without it and fails under CXR_REQUIRE_BROWSER, as CI sets it), a page
without console or page errors, one case card per scored image, an explainer choice that changes the
overlay shown, sortable leaderboards and filters that show the images they say."""
import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

MODELS = ("tiny_a", "tiny_b")
EXPLAINERS = ("gradcam", "lrp", "random", "oracle")
METRICS = ("deletion_auc", "relevance_mass", "seconds_per_image")
N, SIZE = 10, 24


def _run(tmp: Path) -> Path:
    """A run folder as the report stage leaves it: scores, predictions, config, the browser store and
    a report.md with a findings section. Image 9 is scored by nobody (no card); image 8 has no
    annotation; 0-3 are normal (no lesion)."""
    from benchmark.report.artifacts import predictions_frame, write_predictions
    from benchmark.report.browser_store import write_browser
    from benchmark.run.config import load_config
    rng = np.random.default_rng(1)
    ids = [f"case {i:02d}/x" for i in range(N)]  # spaces and slashes, as COVID-QU-Ex ids have
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    masks = np.zeros((N, SIZE, SIZE), bool)
    masks[4:, 6:14, 5:12] = True
    has_mask = np.ones(N, bool)
    has_mask[8] = False
    masks[8] = False
    images = rng.random((N, SIZE, SIZE)).astype(np.float32)
    rows, preds = [], []
    for m, model in enumerate(MODELS):
        for k, e in enumerate(EXPLAINERS):
            for metric in METRICS:
                v = rng.random(N) * (0.01 if metric == "seconds_per_image" else 1) + 0.2 * k
                if metric == "relevance_mass":
                    v[np.r_[0:4, 8]] = np.nan
                rows += [dict(dataset="phantom", split="test", model=model, explainer=e, metric=metric, image_id=i,
                              value=x) for i, x in list(zip(ids, v))[:N - 1]]
        maps = {e: rng.normal(size=(N, SIZE, SIZE)).astype(np.float32) for e in EXPLAINERS}
        maps["oracle"][:4] = np.nan  # not applicable without a lesion
        prob = np.where(labels == 1, 0.8, 0.2)
        prob[[4 + m, 1]] = [0.1, 0.9]  # two misclassified images per model
        preds.append(predictions_frame("phantom", "test", model, ids, labels, prob))
        write_browser(tmp / "browser" / f"{model}.npz", images, masks, has_mask, ids, maps,
                      {e: e == "lrp" for e in EXPLAINERS}, keep=ids[:N - 1])
    pd.DataFrame(rows).to_csv(tmp / "scores.csv", index=False)
    write_predictions(tmp / "predictions.csv", preds)
    cfg = load_config(preset="smoke").to_dict()
    cfg["models"]["names"], cfg["explain"]["names"], cfg["metrics"]["names"] = list(MODELS), list(EXPLAINERS), list(METRICS)
    cfg["report"]["bootstrap"] = 20
    (tmp / "config.toml").write_text(tomli_w.dumps(cfg))
    (tmp / "report").mkdir()
    (tmp / "report" / "report.md").write_text(
        "# Benchmark report: smoke\n\n## What this run supports\n\n| model | explainer | beats |\n|---|---|---|\n"
        "| tiny_a | gradcam | `relevance_mass` **yes** <b> |\n\nSee [findings](findings.csv).\n\n## Data\n\nnot shown\n")
    return tmp


def _write(run: Path) -> Path:
    from benchmark.report import html_report
    from benchmark.report.stats import summarise
    from benchmark.store.runfolder import read_config
    scores = pd.read_csv(run / "scores.csv", dtype={"image_id": str})
    preds = pd.read_csv(run / "predictions.csv", dtype={"image_id": str})
    return html_report.write_html(run, run / "report", read_config(run), scores, summarise(scores, 20), preds)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    return _write(_run(tmp_path_factory.mktemp("run")))


def test_the_folder_is_self_contained_and_rebuilds_byte_identically(html):
    folder = html.parent
    first = _digest(folder)
    _write(folder.parent.parent)
    assert _digest(folder) == first
    page = html.read_text()
    assert '<script src="data.js">' in page and "fetch(" not in page and "http://" not in page and "https://" not in page
    data = (folder / "data.js").read_text()
    paths = set(re.findall(r'"(thumbs/[^"]+)"', data))
    assert paths and all((folder / p).is_file() for p in paths)
    # X-ray per scored image (9), contour per drawn lesion (4: 8 not annotated, 9 not scored), overlays where applicable
    assert len([p for p in paths if p.startswith("thumbs/xray/")]) == N - 1
    assert len([p for p in paths if p.startswith("thumbs/mask/")]) == 4
    assert len([p for p in paths if "/oracle/" in p]) == 2 * (N - 1 - 4)
    assert "&lt;b&gt;" in data and "<b>" not in data  # report.md's text is escaped, never markup


def _open(chromium, html: Path):
    from playwright.sync_api import sync_playwright
    errors: list[str] = []
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    return pw, browser, page, errors


def test_the_page_in_chromium(chromium, html):
    pw, browser, page, errors = _open(chromium, html)
    try:
        assert errors == []  # the page loads without console errors, page errors or missing files
        cards = page.locator(".card")
        assert cards.count() == N - 1  # one card per scored image
        first = page.locator(".card img.overlay").first
        before = first.get_attribute("src")
        assert "/gradcam/" in before
        page.select_option("#explainer", "random")
        after = page.locator(".card img.overlay").first.get_attribute("src")
        assert after != before and "/random/" in after
        # filters: misclassified by the chosen model, lesion, class
        page.select_option("#correct", "wrong")
        assert cards.count() == 2
        page.select_option("#model", "tiny_b")
        assert sorted(page.locator(".card").evaluate_all("cs => cs.map(c => c.dataset.id)")) == ["case 01/x", "case 05/x"]
        page.select_option("#correct", "all")
        page.select_option("#lesion", "unknown")
        assert cards.count() == 1
        page.select_option("#lesion", "all")
        page.select_option("#cls", "0")
        assert cards.count() == 4
        page.select_option("#cls", "all")
        # best N by a metric: the highest relevance mass of the chosen explainer first
        page.select_option("#sort", "relevance_mass")
        page.select_option("#limit", "5")
        shown = page.locator(".card").evaluate_all("cs => cs.map(c => c.dataset.id)")
        scores = pd.read_csv(html.parents[2] / "scores.csv")
        rm = scores[(scores.model == "tiny_b") & (scores.explainer == "random") & (scores.metric == "relevance_mass")]
        best = rm.dropna().sort_values("value", ascending=False)["image_id"].tolist()  # 4 lesion images scored
        assert shown[:4] == best and len(shown) == 5  # then an image the metric left NaN
        # every explainer side by side: one overlay per explainer on each card
        page.select_option("#view", "all")
        assert page.locator(".card").first.locator("img.overlay").count() >= len(EXPLAINERS) - 1
        # a leaderboard sorts by the clicked column (best first: lower deletion AUC)
        table = page.locator("table.board").first
        table.locator("th.sortable").first.click()
        values = table.locator("tbody.methods td:nth-child(2)").evaluate_all("ts => ts.map(t => +t.dataset.v)")
        assert values == sorted(values) and len(values) == 2
        assert table.locator("tbody.baselines tr.baseline").count() == 2  # baselines in their own block
        assert errors == []
    finally:
        browser.close()
        pw.stop()
