"""Several trained instances per architecture (train.seeds, issue 34): instance names, the two-level
interval over instances and images by hand, ranking agreement, and verdicts printed only where they
hold in every instance. The whole-run checks (weights, keys, files, a failing instance) are in
test_instances_run.py."""
import numpy as np
import pandas as pd
import pytest

from benchmark.report import instances as inst
from benchmark.report.instances_headline import headline_lines
from benchmark.report.instances_section import _agreement_table, verdict_lines
from benchmark.store.instances import architecture, by_architecture, instances, seed_of


def test_instance_names_map_back_to_architecture_and_seed():
    assert instances(["vgg16_bn", "resnet50"], []) == [("vgg16_bn", "vgg16_bn", None), ("resnet50", "resnet50", None)]
    assert instances(["resnet50", "vgg16_bn"], [0, 2], given=["vgg16_bn"]) == [
        ("resnet50@s0", "resnet50", 0), ("resnet50@s2", "resnet50", 2), ("vgg16_bn", "vgg16_bn", None)]
    assert (architecture("resnet50@s2"), seed_of("resnet50@s2")) == ("resnet50", 2)
    assert (architecture("resnet50"), seed_of("resnet50")) == ("resnet50", None)
    assert by_architecture(["a@s0", "b", "a@s1", "a@s0"]) == {"a": ["a@s0", "a@s1"], "b": ["b"]}
    with pytest.raises(ValueError, match="not a training seed"):
        seed_of("resnet50@sx")


def test_plan_means_by_hand():
    """values: images x instances. Resample 0 draws images [0, 0] and instances [0, 1]: instance means
    1 and 10, mean 5.5. Resample 1 draws images [0, 1] and instances [1, 1]: instance 1's mean 15 twice."""
    values = np.array([[1.0, 10.0], [3.0, 20.0]])
    got = inst.plan_means(values, np.array([[0, 1], [1, 1]]), np.array([[0, 0], [0, 1]]))
    np.testing.assert_allclose(got, [5.5, 15.0])


def test_interval_covers_instances_when_images_agree_within_each():
    """Every image alike within an instance: the interval is the instance means' alone. Two instances at
    0.2 and 0.6: resamples draw (0.2, 0.2), one of each, or (0.6, 0.6), so the 95% interval is [0.2, 0.6]
    and the mean 0.4 (an interval over images only would be [0.4, 0.4])."""
    values = np.column_stack([np.full(5, 0.2), np.full(5, 0.6)])
    mean, low, high = inst.two_level_ci(values, 1000, 0.95, seed=0)
    assert mean == pytest.approx(0.4) and low == pytest.approx(0.2) and high == pytest.approx(0.6)


def test_instances_share_one_image_draw():
    """Identical instances: the two-level interval is the image bootstrap of the plan's image draws
    (one draw shared by the instances; independent draws per instance would narrow it)."""
    v = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    _, low, high = inst.two_level_ci(np.column_stack([v, v, v]), 500, 0.9, seed=3)
    _, draws = inst.resample_plan(3, len(v), 500, 3)
    assert (low, high) == tuple(np.percentile(v[draws].mean(axis=1), [5, 95]))


def _scores(values: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    rows = [dict(dataset="d", split="test", model=m, explainer=e, metric="relevance_mass", image_id=str(i), value=v)
            for m, by_e in values.items() for e, vs in by_e.items() for i, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_means_over_instances_on_a_constructed_table_by_hand():
    """gradcam scores 0.3 on every image of a@s0 and 0.5 on a@s1 (image 3 NaN there: left out of both);
    random 0.1 on both. By hand: gradcam mean 0.4, interval [0.3, 0.5], SD of instance means 0.1414, n 3;
    random 0.1 [0.1, 0.1]. The single-instance architecture b is not reported."""
    table = _scores({"a@s0": {"gradcam": [0.3, 0.3, 0.3, 0.3], "random": [0.1] * 4},
                     "a@s1": {"gradcam": [0.5, 0.5, 0.5, np.nan], "random": [0.1] * 4},
                     "b": {"gradcam": [0.9] * 4, "random": [0.1] * 4}})
    got = inst.instance_means(table, 1000, 0.95, 0).set_index("explainer")
    assert list(got["architecture"].unique()) == ["a"]
    g = got.loc["gradcam"]
    assert (g["n"], g["instances"]) == (3, 2)
    assert (g["mean"], g["ci_low"], g["ci_high"]) == pytest.approx((0.4, 0.3, 0.5))
    assert g["sd_instances"] == pytest.approx(np.sqrt(0.02))
    assert (got.loc["random", "ci_low"], got.loc["random", "ci_high"]) == pytest.approx((0.1, 0.1))


def test_kendall_agreement_by_hand():
    """[x, y, z] against [x, z, y]: 2 concordant pairs, 1 discordant, tau = 1/3; an order of one shared
    item has no pair."""
    assert inst.mean_kendall([["x", "y", "z"], ["x", "z", "y"]]) == (pytest.approx(1 / 3), 1)
    assert inst.mean_kendall([["x", "y"], ["x", "y"], ["y", "x"]]) == (pytest.approx(-1 / 3), 3)
    assert np.isnan(inst.mean_kendall([["x"], ["x", "y"]])[0])


def _comparison(model, metric, baseline, beats):
    return dict(dataset="d", model=model, explainer="gradcam", metric=metric, baseline=baseline, n=10, mean_diff=0.1,
                diff_ci_low=0.0, diff_ci_high=0.2, p_holm=0.01 if beats else 0.5, beats=beats,
                equivalence_margin=0.05, p_tost_holm=0.9, equivalent=False, judged=True)


def test_a_verdict_of_one_instance_only_is_not_printed_as_a_verdict():
    """gradcam beats random on relevance_mass in both instances, on pointing_game in a@s0 only: the
    verdict line names relevance_mass; pointing_game is counted (1 of 2), not claimed."""
    comp = pd.DataFrame([_comparison("a@s0", "relevance_mass", "random", True),
                         _comparison("a@s1", "relevance_mass", "random", True),
                         _comparison("a@s0", "pointing_game", "random", True),
                         _comparison("a@s1", "pointing_game", "random", False)])
    v = inst.verdicts(comp).set_index("metric")
    assert bool(v.loc["relevance_mass", "holds"]) and not bool(v.loc["pointing_game", "holds"])
    assert v.loc["pointing_game", "holds_in"] == 1
    agree = pd.DataFrame(columns=inst.AGREEMENT_COLUMNS)
    line = verdict_lines(inst.verdicts(comp), agree)[0]
    held, _, partial = line.partition("; in some instances only, not a verdict: ")
    assert "Relevance mass" in held and "Pointing game" not in held, line
    assert partial == "Pointing game (1 of 2)", line


def test_the_headline_of_a_seeds_run_claims_only_what_holds_in_every_instance():
    """"What this run supports" of a run with two instances of `a`: gradcam beats random and lung_prior
    on iou in both (every prior), random in both but lung_prior in a@s0 only on dice, random in a@s0
    only on deletion_auc (counted 1 of 2, marked where a@s1 fails its known-truth check), neither on
    pointing_game (absent); sanity passes in one instance of two."""
    comp = pd.DataFrame([_comparison(m, metric, b, won) for m, metric, b, won in (
        ("a@s0", "iou", "random", True), ("a@s1", "iou", "random", True),
        ("a@s0", "iou", "lung_prior", True), ("a@s1", "iou", "lung_prior", True),
        ("a@s0", "dice", "random", True), ("a@s1", "dice", "random", True),
        ("a@s0", "dice", "lung_prior", True), ("a@s1", "dice", "lung_prior", False),
        ("a@s0", "deletion_auc", "random", True), ("a@s1", "deletion_auc", "random", False),
        ("a@s0", "pointing_game", "random", False), ("a@s1", "pointing_game", "random", False))])
    overview = pd.DataFrame([dict(dataset="d", model="a@s0", explainer="gradcam", sanity="passes (Δ -0.3)"),
                             dict(dataset="d", model="a@s1", explainer="gradcam", sanity="fails (Δ 0.4)")])
    agree = pd.DataFrame(columns=inst.AGREEMENT_COLUMNS)
    lines = headline_lines(inst.verdicts(comp), agree, overview, known_false={("d", "a@s1", "deletion_auc")})
    row = [line for line in lines if line.startswith("| a | Grad-CAM |")]
    assert len(row) == 1, lines
    every, floor_only, some, sanity = [c.strip() for c in row[0].strip("|").split("|")][2:]
    assert every == "IoU", row
    assert floor_only == "Dice", row
    assert some == "Deletion AUC‡ (1 of 2)", row
    assert "Pointing game" not in row[0]
    assert sanity == "passes in 1 of 2", row
    assert "Leads (significantly better than the runner-up) in every instance: none." in lines


def _summary_row(model, explainer, mean):
    return dict(dataset="d", model=model, explainer=explainer, metric="relevance_mass", n=10, n_failed=0, n_nan=0,
                mean=mean, median=mean, ci_low=mean, ci_high=mean)


def _test_row(model, p):
    return dict(dataset="d", model=model, metric="relevance_mass", a="gradcam", b="lrp", n=10, mean_diff=0.2,
                diff_ci_low=0.1, diff_ci_high=0.3, p=p, p_holm=p, rank_biserial=0.8)


def test_a_lead_significant_in_one_instance_only_is_not_a_lead_across_instances():
    """gradcam is first in both instances (share 100%, tau 1), but beats the runner-up significantly in
    a@s0 only: it does not lead in every instance; with both significant it does."""
    summary = pd.DataFrame([_summary_row(m, e, v) for m in ("a@s0", "a@s1") for e, v in
                            (("gradcam", 0.6), ("lrp", 0.4), ("random", 0.1))])
    tests = pd.DataFrame([_test_row("a@s0", 0.001), _test_row("a@s1", 0.3)])
    row = inst.agreement(summary, tests).iloc[0]
    assert (row["leader"], row["leader_share"], row["kendall_tau"]) == ("gradcam", 1.0, pytest.approx(1.0))
    assert not bool(row["leads_every_instance"])
    both = pd.DataFrame([_test_row("a@s0", 0.001), _test_row("a@s1", 0.001)])
    assert bool(inst.agreement(summary, both).iloc[0]["leads_every_instance"])


def test_agreement_says_when_no_headroom_leaves_nothing_to_rank():
    """relevance_mass not judged in a@s1 (no headroom): one instance ranks, no pair; the table says
    why, not that the instances rank too few methods."""
    summary = pd.DataFrame([_summary_row(m, e, v) for m in ("a@s0", "a@s1") for e, v in
                            (("gradcam", 0.6), ("lrp", 0.4), ("random", 0.1))]).assign(judged=True)
    summary.loc[summary.model == "a@s1", "judged"] = False
    agree = inst.agreement(summary, pd.DataFrame([_test_row("a@s0", 0.001)]))
    row = agree.iloc[0]
    assert (row["judged_in"], row["pairs"], row["instances"]) == (1, 0, 2)
    assert "– (not judged in 1 of 2 instances: no headroom)" in "\n".join(_agreement_table(agree))
    both = inst.agreement(summary.assign(judged=True), pd.DataFrame([_test_row("a@s0", 0.001)]))
    assert (both.iloc[0]["judged_in"], both.iloc[0]["pairs"]) == (2, 1)


def test_classifier_spread_mean_and_sd():
    cls = {"a@s0": {"val": {"accuracy": 0.8}, "test": {"accuracy": 0.7, "auroc": 0.9}},
           "a@s1": {"val": {"accuracy": 0.9}, "test": {"accuracy": 0.9, "auroc": 0.7}},
           "b": {"val": {"accuracy": 0.5}, "test": {"accuracy": 0.5, "auroc": 0.5}}}
    [row] = inst.classifier_spread(cls)
    assert row["architecture"] == "a" and row["test_accuracy"] == pytest.approx((0.8, np.sqrt(0.02)))


def test_default_run_trains_one_instance_per_model_under_its_own_name():
    """train.seeds = [] (default): names and the train config are those of a run before the setting."""
    from benchmark.run.config import load_config
    from benchmark.run.train import train_config
    cfg = load_config()
    assert cfg.train.seeds == []
    assert [n for n, _, _ in instances(cfg.models.names, cfg.train.seeds)] == cfg.models.names
    assert train_config(cfg, "resnet50", 0).seed == 0 and not hasattr(train_config(cfg, "resnet50", 0), "seeds")


@pytest.mark.parametrize("sets,match", [(["train.seeds=[1, 1]"], "names a seed twice"),
                                        (["train.seeds=[0, 1]", "run.repeat_seeds=[1]"], "must not repeat a seed")])
def test_bad_seeds_are_refused(sets, match):
    from benchmark.run.config import load_config
    from benchmark.run.validate import check_seeds
    with pytest.raises(ValueError, match=match):
        check_seeds(load_config(overrides=sets))


def test_means_across_instances_are_tables_a_reader_can_print():
    """One table per metric category, none wider than the leaderboards' limit, display names, methods
    first and the baselines in one block below them (the first version put 18 metrics in one table)."""
    from benchmark.report.board_format import MAX_COLUMNS
    from benchmark.report.instances_section import _means_tables
    from benchmark.metrics import get_metric
    metrics = ["deletion_auc", "insertion_auc", "faithfulness_correlation", "road_morf", "road_lerf", "dice", "iou",
               "lung_mass", "pixel_auprc", "pixel_auroc", "pointing_game", "relevance_mass", "relevance_rank",
               "top_k_intersection", "randomisation_ssim", "seconds_per_image"]
    means = pd.DataFrame([dict(explainer=e, metric=m, mean=0.5, ci_low=0.4, ci_high=0.6, n=10)
                          for e in ("random", "lrp", "gradcam", "center") for m in metrics])
    lines = _means_tables(means)
    heads = [line for line in lines if line.startswith("| explainer |")]
    assert len(heads) >= len({get_metric(m).category for m in metrics})
    assert all(line.count("|") - 1 <= MAX_COLUMNS for line in heads), heads
    first = lines.index(heads[0])
    rows = [line.split(" | ")[0][2:] for line in lines[first + 2:first + 7]]
    assert rows == ["Grad-CAM", "LRP", "*Baselines (reference)*", "Centre prior", "Random"], rows
    assert "Time per image (ms) ↓" in "\n".join(lines)


def test_the_main_figure_of_a_seeds_run_is_per_architecture_with_each_instance(tmp_path):
    """The main figure's rows are architectures: the mean over instances (instance_means) and each
    instance's mean on the images both scored, by hand (gradcam 0.3 on a@s0; 0.5 on a@s1 whose image 3
    is NaN, so 3 images); a metric not judged in one instance is not judged for the architecture."""
    from benchmark.report import paper_figures
    table = _scores({"a@s0": {"gradcam": [0.3, 0.3, 0.3, 0.3], "random": [0.1] * 4},
                     "a@s1": {"gradcam": [0.5, 0.5, 0.5, np.nan], "random": [0.1] * 4}})
    points = inst.instance_points(table).set_index(["explainer", "instance"])["mean"]
    assert points[("gradcam", "a@s0")] == pytest.approx(0.3) and points[("gradcam", "a@s1")] == pytest.approx(0.5)
    # on the images both instances scored: a@s0's image 3 (0.9) is left out with a@s1's NaN
    uneven = _scores({"a@s0": {"gradcam": [0.1, 0.3, 0.5, 0.9]}, "a@s1": {"gradcam": [0.2, 0.2, 0.2, np.nan]}})
    assert inst.instance_points(uneven).set_index("instance")["mean"]["a@s0"] == pytest.approx(0.3)
    means = inst.instance_means(table, 200, 0.95, 0)
    summary = pd.DataFrame([dict(dataset="d", model=m, metric="relevance_mass", judged=m == "a@s0")
                            for m in ("a@s0", "a@s1")])
    arch = inst.architecture_summary(means, summary)
    assert set(arch["model"]) == {"a"} and not arch["judged"].any()
    assert not inst.architecture_summary(means, summary.assign(judged=True))["judged"].eq(False).any()
    files = paper_figures.main_figure(arch, tmp_path / "main", points=inst.instance_points(table))
    assert files and all(p.exists() and p.stat().st_size > 0 for p in files)


@pytest.mark.parametrize("width", ["columnwidth", "textwidth"])
def test_the_means_across_instances_compile_as_latex_tables(width, tmp_path, pdflatex):
    """across_instances.tex: per architecture, captioned as the two-level interval over instances and
    images (no significance marks), inside the declared width without scaling."""
    from benchmark.report import latex
    rng = np.random.default_rng(0)
    metrics = ["relevance_mass", "pointing_game", "iou", "dice", "deletion_auc", "insertion_auc"]
    rows = [dict(dataset="d", split="test", model=m, explainer=e, metric=metric, image_id=str(i),
                 value=float(rng.random() if metric != "pointing_game" else rng.integers(0, 2)))
            for m in ("vgg16_bn@s0", "vgg16_bn@s1", "vgg16_bn@s2") for e in ("gradcam", "lrp", "random", "sobel")
            for metric in metrics for i in range(12)]
    means = inst.instance_means(pd.DataFrame(rows), 100, 0.95, 0)
    summary = pd.DataFrame([dict(dataset="d", model=m, metric=metric, judged=True)
                            for m in ("vgg16_bn@s0", "vgg16_bn@s1", "vgg16_bn@s2") for metric in metrics])
    text = latex.leaderboard_tex(inst.architecture_summary(means, summary), None, width=width, across=True)
    assert "two-level bootstrap over the instances" in text and "VGG16-BN" in text
    assert "\\dagger" not in text, "no lead is claimed across instances here"
    assert not latex.SCALING.search(text)
    assert latex.compile_check(text, tmp_path / "across") == []
