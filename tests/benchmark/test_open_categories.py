"""Open metric categories (issue 28, item 5): a plug-in metric may declare any category, Quantus's six
(faithfulness, robustness, localisation, complexity, randomisation = sanity, axiomatic), runtime, or a
lowercase name of its own; tables, figures, findings and the trust section handle it with no code per
category (known categories first, the others after them alphabetically).

The plug-in here: `gini_complexity` (complexity, Quantus Sparseness: the Gini index of |map|) and
`map_roughness` (a category of its own, "smoothness")."""
import re
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import quantus
import torch

from benchmark.metrics import METRICS, get_metric, register_metric
from benchmark.metrics.registry import category_key, ordered_categories
from benchmark.run import plugins

PLUGIN = textwrap.dedent('''
    import torch
    from benchmark.metrics import register_metric

    @register_metric("gini_complexity", category="complexity", higher_is_better=True)
    def gini_complexity(model, images, targets, maps, masks, has_mask, **_):
        """Gini index of |map| (Chalasani et al. 2020; Quantus Sparseness): 1 all relevance on one pixel, 0 flat."""
        a = maps.abs().flatten(1).double()
        a = a / a.amax(1, keepdim=True).clamp(min=1e-30)  # Quantus normalises by the max, then adds 1e-7
        a = torch.sort(a + 1e-7, dim=1).values
        n = a.shape[1]
        k = torch.arange(1, n + 1, dtype=a.dtype, device=a.device)
        return (((2 * k - n - 1) * a).sum(1) / (n * a.sum(1))).float()

    @register_metric("map_roughness", category="smoothness", higher_is_better=False)
    def map_roughness(model, images, targets, maps, masks, has_mask, **_):
        """Mean absolute difference of neighbouring pixels of the max-normalised |map|."""
        a = maps.abs()
        a = a / a.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]
        return (a.diff(dim=1).abs().flatten(1).mean(1) + a.diff(dim=2).abs().flatten(1).mean(1)) / 2
''')
NEW = ("gini_complexity", "map_roughness")


@pytest.fixture
def plugin(tmp_path, clean_registries):
    """The plug-in file, loaded in this process (and its metrics unregistered after the test)."""
    path = tmp_path / "open_categories_plugin.py"
    path.write_text(PLUGIN)
    plugins.load_plugins([str(path)], entry_points=False)
    return path


def test_any_lowercase_category_registers_in_table_order(plugin, clean_registries):
    assert get_metric("gini_complexity").category == "complexity"
    assert get_metric("map_roughness").category == "smoothness"
    for category in ("robustness", "axiomatic", "randomisation"):  # Quantus's; randomisation is our sanity
        register_metric(f"q_{category}", category, higher_is_better=True)(lambda **_: None)
    assert get_metric("q_randomisation").category == "sanity"
    register_metric("zz_metric", "attention_share", higher_is_better=True)(lambda **_: None)
    for bad in ("Complexity", "two words", "", "9lives", None):
        with pytest.raises(ValueError, match=r"metric 'bad_one': category .* not a lowercase identifier"):
            register_metric("bad_one", bad, higher_is_better=True)
    assert "bad_one" not in METRICS
    assert ordered_categories(["smoothness", "runtime", "attention_share", "complexity", "faithfulness",
                               "sanity", "localisation", "robustness", "axiomatic"]) == [
        "faithfulness", "localisation", "robustness", "complexity", "axiomatic", "sanity", "runtime",
        "attention_share", "smoothness"]
    assert category_key("runtime") < category_key("attention_share")

    from benchmark.report.tables import ordered_metrics
    assert ordered_metrics(["map_roughness", "zz_metric", "seconds_per_image", "gini_complexity", "q_randomisation",
                            "relevance_mass", "deletion_auc"]) == [
        "deletion_auc", "relevance_mass", "gini_complexity", "q_randomisation", "seconds_per_image",
        "zz_metric", "map_roughness"]


def test_gini_complexity_equals_quantus_sparseness(plugin, np_trapz):
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(6, 24, 24)).astype(np.float32)  # signed: both take |map|
    maps[1] = np.abs(maps[1]) ** 6  # peaked
    maps[2] = 0.5 + 1e-3 * rng.random((24, 24))  # nearly flat: Gini ~ 0 (Quantus refuses a flat map)
    maps[3] = 0.0
    maps[3, 5, 7] = -2.0  # one pixel: Gini ~ 1
    ref = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a in maps:  # one map a call: Quantus normalises by the max over the whole batch, we per map
            ref += quantus.Sparseness(disable_warnings=True)(
                model=None, x_batch=np.zeros((1, 1, 24, 24), np.float32), y_batch=np.zeros(1, int),
                a_batch=a[None, None].copy())
    from benchmark.metrics import score
    t = torch.from_numpy(maps)
    ours = score("gini_complexity", None, t[:, None], torch.zeros(6, dtype=torch.long), t, None, None).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)
    assert ours[3] > 0.99 and ours[2] < 0.01 and ours[1] > ours[0]


def _run_folder(tmp: Path) -> Path:
    """A run folder from a constructed score table: two methods, two baselines, one metric of each of
    localisation, complexity, runtime and the plug-in's own "smoothness"."""
    import tomli_w

    from benchmark.run.config import load_config
    rng = np.random.default_rng(0)
    n = 24
    level = {"gradcam": 0.8, "lrp": 0.7, "random": 0.2, "sobel": 0.4}
    rows = []
    for e, base in level.items():
        for metric in ("relevance_mass", "gini_complexity", "map_roughness", "seconds_per_image"):
            v = np.clip(base + 0.05 * rng.normal(size=n), 0, 1)
            if metric == "map_roughness":
                v = 1 - v  # lower is better: the methods are smoother
            if metric == "seconds_per_image":
                v = 0.01 + 0.001 * rng.random(n)
            rows += [dict(dataset="phantom", split="test", model="tiny", explainer=e, metric=metric, image_id=f"i{i}",
                          value=x) for i, x in enumerate(v)]
    tmp.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(tmp / "scores.csv", index=False)
    cfg = load_config(preset="smoke").to_dict()
    cfg["models"]["names"], cfg["explain"]["names"] = ["tiny"], list(level)
    cfg["metrics"]["names"] = ["relevance_mass", "gini_complexity", "map_roughness", "seconds_per_image"]
    cfg["report"]["bootstrap"] = 50
    (tmp / "config.toml").write_text(tomli_w.dumps(cfg))
    return tmp


def test_report_gives_each_category_its_table_figure_and_verdicts(plugin, tmp_path, monkeypatch):
    from benchmark.report import figures, paper_figures
    from benchmark.report.build import build_report
    panels: dict[str, list[str]] = {}
    save = figures.save

    def recording_save(fig, stem, **kw):  # the panel titles of every figure drawn (one worker: this process)
        panels[Path(stem).name] = [ax.get_title() for ax in fig.axes]
        return save(fig, stem, **kw)

    monkeypatch.setattr(figures, "save", recording_save)
    monkeypatch.setattr(paper_figures, "save", recording_save)
    run = _run_folder(tmp_path / "run")
    md = build_report(run, figure_workers=1)
    rep = run / "report"

    # one leaderboard table per category, known ones first, the plug-in's own after them
    heads = re.findall(r"^### tiny on phantom: (\w+)$", md, re.M)
    assert heads == ["Localisation", "Complexity", "Runtime", "smoothness"]  # display names; a plug-in's as it is
    assert "gini_complexity ↑" in md and "map_roughness ↓" in md
    tex = (rep / "leaderboard.tex").read_text()
    assert [c for c in ("Localisation", "Complexity", "Runtime", "smoothness") if f"phantom, {c}:" in tex] == \
        ["Localisation", "Complexity", "Runtime", "smoothness"]
    assert tex.index("phantom, Complexity:") < tex.index("phantom, smoothness:")
    combined = (rep / "leaderboard_all.md").read_text()
    assert combined.index("Relevance mass") < combined.index("gini_complexity") < combined.index(
        "Time per image") < combined.index("map_roughness")
    # a panel of its own in the leaderboard figure, and a column in the rank heat map
    assert "gini_complexity ↑" in panels["leaderboard-complexity"] and "map_roughness ↓" in panels["leaderboard-smoothness"]
    assert (rep / "leaderboard-smoothness.png").stat().st_size > 1000 and (rep / "ranks.png").exists()

    # findings: the generic rule (method against each baseline in the metric's direction) for both
    comp = pd.read_csv(rep / "findings.csv")
    for m in NEW:
        c = comp[comp.metric == m]
        assert set(c.explainer) == {"gradcam", "lrp"} and set(c.baseline) == {"random", "sobel"}, m
        assert c["beats"].all(), m  # the methods are far better in both directions
    assert not (comp.metric == "seconds_per_image").any()  # runtime is cost: never "beaten"
    report = (rep / "report.md").read_text()
    supports = report.split("## What this run supports")[1].split("\n## ")[0]
    assert "gini_complexity (" in supports and "map_roughness (" in supports

    # trust: in the agreement (runtime is not), discrimination stays faithfulness/localisation only
    agree = pd.read_csv(rep / "metric_agreement_with_baselines.csv")
    pairs = set(zip(agree.metric_a, agree.metric_b)) | set(zip(agree.metric_b, agree.metric_a))
    assert ("gini_complexity", "map_roughness") in pairs and ("relevance_mass", "gini_complexity") in pairs
    assert not {"seconds_per_image"} & (set(agree.metric_a) | set(agree.metric_b))
    trust = report.split("## How far to trust these metrics")[1]
    for m in NEW:
        assert f"- `{m}`: " in trust, m
    assert set(pd.read_csv(rep / "rank_first.csv").metric) >= set(NEW)


def test_list_shows_categories(plugin, capsys):
    from benchmark.cli import main
    assert main(["list", "--plugin", str(plugin)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"gini_complexity\s+complexity\s+higher is better", out)
    line = next(x for x in out.splitlines() if x.startswith("categories: "))
    assert "complexity (1)" in line and "robustness (0)" in line
    assert line.index("runtime") < line.index("smoothness (1)")


@pytest.mark.integration
def test_a_run_with_the_plugin_scores_its_categories(tmp_path, clean_registries, one_torch_thread, monkeypatch):
    from benchmark.cli import main
    path = tmp_path / "open_categories_plugin.py"
    path.write_text(PLUGIN)
    out = tmp_path / "run"
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert main(["run", "--preset", "smoke", "--plugin", str(path), "--out", str(out),
                 "--set", "data.cache_dir=''", "--set", "data.limit={train=8, val=4, test=4}",
                 "--set", "models.names=['resnet50']", "--set", "explain.names=['gradcam','random']",
                 "--set", "metrics.names=['gini_complexity','map_roughness','relevance_mass']",
                 "--set", "metrics.reliability=false"]) == 0
    scores = pd.read_csv(out / "scores.csv")
    for m in NEW:
        s = scores[scores.metric == m]
        assert set(s.explainer) == {"gradcam", "random"} and len(s) == 8 and s.value.notna().all(), m
    g = scores[scores.metric == "gini_complexity"].set_index("explainer").value
    assert ((g >= 0) & (g <= 1)).all()
    board = (out / "report" / "leaderboard.md").read_text()
    assert "### ResNet50 on phantom: Complexity" in board and "### ResNet50 on phantom: smoothness" in board
