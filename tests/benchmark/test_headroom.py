"""Issue 29, item 2: headroom of the curve metrics. A curve metric whose fully perturbed image is
classified like the unperturbed one (per target class) is marked "no headroom" and kept out of every
verdict (findings, bold / dagger, trust section); the normalised AUC rescales by the curve's own ends."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.metrics import score
from benchmark.metrics.faithfulness import normalised_auc
from benchmark.report import headroom as hr
from benchmark.report.artifacts import curve_ends_frame, load_curve_ends, write_curve_ends
from benchmark.report.findings import findings, findings_markdown
from benchmark.report.stats import paired_tests, summarise
from benchmark.report.tables import leaderboard_markdown, significant_leads
from benchmark.report.trust import trust_section

N = 20
IDS = [f"i{k:02d}" for k in range(N)]
LABELS = np.array([k % 2 for k in range(N)])  # odd ids pneumonia


def _predictions(prob=None) -> pd.DataFrame:
    prob = np.where(LABELS == 1, 0.95, 0.05) if prob is None else prob
    return pd.DataFrame({"dataset": "d", "split": "s", "model": "m", "image_id": IDS, "label": LABELS,
                         "prob_pneumonia": prob, "lesion_share": np.nan})


def _ends(metric, start, end, explainers=("gradcam", "random")) -> pd.DataFrame:
    frames = [curve_ends_frame("d", "s", "m", e, metric, IDS, np.stack([start, end], 1)) for e in explainers]
    return pd.concat(frames, ignore_index=True)


def test_zero_fill_deletion_has_no_headroom_on_the_class_it_keeps():
    """The default run's zero fill: the black image is classified pneumonia, so deleting everything
    drops P(target) on normal images only. Pooled over both classes the drop looks large
    (0.95 -> 0.5); per class, pneumonia keeps 0.90. Deliberate bug caught: judging the pooled mean."""
    unperturbed = np.full(N, 0.95)
    end = np.where(LABELS == 1, 0.90, 0.10)  # P(target) of the black image: pneumonia stays, normal drops
    table = hr.headroom(_ends("deletion_auc", unperturbed, end), _predictions(), "label", 0.1)
    rows = table.set_index("class")
    assert rows.loc["pneumonia", "p_unperturbed"] == pytest.approx(0.95)
    assert rows.loc["pneumonia", "p_end"] == pytest.approx(0.90)
    assert rows.loc["pneumonia", "drop"] == pytest.approx(0.05) and not rows.loc["pneumonia", "headroom"]
    assert rows.loc["normal", "drop"] == pytest.approx(0.85) and rows.loc["normal", "headroom"]
    assert hr.lacking(table) == {("d", "m", "deletion_auc")}
    # a fill that moves both classes has headroom
    ok = hr.headroom(_ends("deletion_auc", unperturbed, np.full(N, 0.5)), _predictions(), "label", 0.1)
    assert ok["headroom"].tolist() == [True, True] and hr.lacking(ok) == frozenset()


def test_insertion_reads_its_start_and_the_margin_is_stated():
    """Insertion starts fully perturbed and ends at the unperturbed image: RISE's blur at 64 px
    (P 0.927 -> 0.955 on the default run) has no headroom. Deliberate bug caught: reading insertion's
    end as the perturbed point (it is the unperturbed image), which would see 0 drop everywhere even
    where the start is far below."""
    start, end = np.full(N, 0.927), np.full(N, 0.955)
    table = hr.headroom(_ends("insertion_auc", start, end), _predictions(), "label", 0.1)
    assert set(table["headroom"]) == {False}
    assert table["p_unperturbed"].tolist() == pytest.approx([0.955, 0.955]) and table["p_start"].iloc[0] == pytest.approx(0.927)
    far = hr.headroom(_ends("insertion_auc", np.full(N, 0.3), end), _predictions(), "label", 0.1)
    assert set(far["headroom"]) == {True} and far["drop"].iloc[0] == pytest.approx(0.655)
    # the same numbers judged at a margin of 0.02 have headroom: the margin decides, and is printed
    assert set(hr.headroom(_ends("insertion_auc", start, end), _predictions(), "label", 0.02)["headroom"]) == {True}
    md = "\n".join(hr.headroom_markdown(table, 0.1))
    assert "within 0.1 of the unperturbed" in md and "`report.headroom_margin` = 0.1" in md
    assert "| m | insertion_auc | pneumonia | 10 | 0.955 | 0.927 | 0.955 | 0.028 | **no headroom** |" in md
    with pytest.raises(ValueError, match="headroom_margin"):
        hr.headroom(table, _predictions(), "label", 1.5)


def test_road_reads_the_unperturbed_output_from_predictions_and_random_s_removal():
    """ROAD's curve does not hold the unperturbed image: its accuracy comes from predictions.csv and
    the fully perturbed point from `random`'s largest removal (not a method's, whose order depends on
    the map). Deliberate bug caught: averaging the end over every explainer (gradcam here removes the
    evidence first and would lend ROAD headroom that the removal itself does not have)."""
    start = np.ones(N)
    frames = [curve_ends_frame("d", "s", "m", "random", "road_morf", IDS, np.stack([start, np.full(N, 1.0)], 1)),
              curve_ends_frame("d", "s", "m", "gradcam", "road_morf", IDS, np.stack([start, np.zeros(N)], 1))]
    table = hr.headroom(pd.concat(frames), _predictions(), "label", 0.1)
    assert table["p_unperturbed"].tolist() == [1.0, 1.0] and table["p_end"].tolist() == [1.0, 1.0]
    assert set(table["headroom"]) == {False} and "random" in table["reference"].iloc[0]
    # output "probability": P(target) from predictions (0.95 on every image here)
    prob = hr.headroom(pd.concat(frames), _predictions(), "label", 0.1, {"road_morf": {"output": "probability"}})
    assert prob["p_unperturbed"].tolist() == pytest.approx([0.95, 0.95])
    # without predictions.csv the classes and ROAD's unperturbed output are unknown: not judged, kept in
    unknown = hr.headroom(pd.concat(frames), None, "label", 0.1)
    assert unknown["class"].tolist() == ["all"] and unknown["headroom"].tolist() == [None]
    assert hr.lacking(unknown) == frozenset()


def _scores() -> pd.DataFrame:
    """gradcam clearly beats random on deletion_auc and on relevance_mass; lrp trails gradcam."""
    rng = np.random.default_rng(0)
    base = rng.random(N)
    values = {("gradcam", "deletion_auc"): base - 0.3, ("lrp", "deletion_auc"): base - 0.1,
              ("random", "deletion_auc"): base,
              ("gradcam", "relevance_mass"): base + 0.3, ("lrp", "relevance_mass"): base + 0.1,
              ("random", "relevance_mass"): base, ("oracle", "relevance_mass"): base + 0.5,
              ("oracle", "deletion_auc"): base - 0.5}
    return pd.DataFrame([dict(dataset="d", split="s", model="m", explainer=e, metric=m, image_id=IDS[i], value=v)
                         for (e, m), vs in values.items() for i, v in enumerate(vs)])


def test_a_metric_without_headroom_is_kept_out_of_every_verdict(tmp_path):
    """Deliberate bug caught: marking the metric in the headroom table but still letting it decide
    "beats", bold, the dagger or the trust section's agreement / discrimination / rank-first."""
    scores = _scores()
    unjudged = hr.lacking(hr.headroom(_ends("deletion_auc", np.full(N, 0.95), np.where(LABELS == 1, 0.9, 0.1)),
                                      _predictions(), "label", 0.1))
    assert unjudged == {("d", "m", "deletion_auc")}
    summary, tests = summarise(scores, 100), paired_tests(scores, 100)
    comp, overview = findings(summary, tests, unjudged=unjudged)
    c = comp.set_index(["explainer", "metric", "baseline"])
    assert not c.loc[("gradcam", "deletion_auc", "random"), "beats"] and not c.loc[("gradcam", "deletion_auc", "random"), "judged"]
    assert c.loc[("gradcam", "relevance_mass", "random"), "beats"]  # the other metric is judged as before
    row = overview.set_index("explainer").loc["gradcam"]
    assert "deletion_auc" not in row.beats_all + row.beats_random_only + row.not_random
    assert row.not_judged == "deletion_auc"
    assert "Not judged (no headroom" in findings_markdown(overview) and "m: deletion_auc" in findings_markdown(overview)
    # without the mark the same scores make gradcam beat random on deletion: the mark is what removes it
    assert findings(summary, tests)[0].set_index(["explainer", "metric", "baseline"]).loc[
        ("gradcam", "deletion_auc", "random"), "beats"]
    # tables: no bold, no dagger in the column of a metric without headroom; relevance_mass keeps both
    marked = hr.mark(summary, unjudged)
    assert significant_leads(marked, tests) == {("d", "m", "relevance_mass")}
    assert significant_leads(summary, tests) == {("d", "m", "deletion_auc"), ("d", "m", "relevance_mass")}
    md = leaderboard_markdown(marked, 0.95, tests)
    faith = md.split("### m on d: Faithfulness")[1].split("###")[0]
    loc = md.split("### m on d: Localisation")[1]
    assert "**" not in faith and "†" not in faith and "**" in loc and "†" in loc
    # trust section: no agreement, discrimination or rank-first row of the metric; a line says why
    (tmp_path / "report").mkdir()
    lines = "\n".join(trust_section(marked, scores, tmp_path / "report", 50, 0, unjudged))
    for name in ("metric_agreement.csv", "discrimination.csv", "rank_first.csv"):
        t = pd.read_csv(tmp_path / "report" / name)
        assert "deletion_auc" not in set(t.filter(like="metric").to_numpy().ravel()), name
    assert "- `deletion_auc`: no headroom" in lines


def test_curve_ends_round_trip(tmp_path):
    frame = curve_ends_frame("d", "s", "m", "gradcam", "deletion_auc", ["b", "a"], np.array([[0.9, 0.5, 0.1], [0.8, 0.4, 0.2]]))
    assert frame[["image_id", "start", "end"]].values.tolist() == [["b", 0.9, 0.1], ["a", 0.8, 0.2]]
    write_curve_ends(tmp_path / "curve_ends.csv", [frame])
    back = load_curve_ends(tmp_path / "curve_ends.csv")
    assert back["image_id"].tolist() == ["a", "b"] and load_curve_ends(tmp_path / "none.csv") is None
    with pytest.raises(ValueError):
        curve_ends_frame("d", "s", "m", "gradcam", "deletion_auc", ["a"], np.zeros((2, 3)))


def test_headroom_section_writes_the_table_or_says_it_cannot():
    from benchmark.report.evidence_sections import headroom_part
    cfg = SimpleNamespace(metrics=SimpleNamespace(names=["deletion_auc", "relevance_mass"]),
                          report=SimpleNamespace(headroom_margin=0.1))
    part = headroom_part(SimpleNamespace(headroom=None, cfg=cfg, scores=_scores()))
    assert not part.lines and "not judged, the run folder has no `curve_ends.csv`" in part.notes[0]


def test_normalised_auc_by_hand():
    """(AUC - p_perturbed) / (p_unperturbed - p_perturbed), the ends read per kind; NaN below min_drop.
    Deliberate bug caught: the unsigned (AUC - min) / |end - start|, which scores a deletion curve that
    rises (the fill looks more like the target) as if it fell."""
    curves = torch.tensor([[1.0, 0.5, 0.0],     # deletion: falls from 1 to 0, AUC 0.5 -> 0.5
                           [0.8, 0.2, 0.2],     # AUC (0.5 + 0.2 + 0.1) / 2 ... = 0.35, ends 0.8 / 0.2
                           [0.5, 0.6, 0.9],     # rises: deletion has no headroom here -> NaN
                           [0.9, 0.85, 0.88]])  # drop 0.02 < min_drop -> NaN
    auc = torch.trapezoid(curves, dx=0.5, dim=1)
    got = normalised_auc(curves, insert=False, min_drop=0.1)
    assert got[0] == pytest.approx(0.5) and got[1] == pytest.approx((float(auc[1]) - 0.2) / 0.6)
    assert torch.isnan(got[2]) and torch.isnan(got[3])
    ins = normalised_auc(curves.flip(1), insert=True, min_drop=0.1)  # the same curves read as insertion
    assert ins[0] == pytest.approx(0.5) and ins[1] == pytest.approx((float(auc[1]) - 0.2) / 0.6)
    assert torch.isnan(ins[2]) and torch.isnan(ins[3])


def test_normalised_deletion_auc_through_the_registry():
    """score(..., normalise=True) on MeanModel (class-1 logit 8 (mean - 0.5)): equals the rescaled
    plain AUC of the same curve, which the sink hands back."""
    class MeanModel(torch.nn.Module):
        def forward(self, x):
            z = 8 * (x.mean((1, 2, 3)) - 0.5)
            return torch.stack([torch.zeros_like(z), z], 1)
    g = torch.Generator().manual_seed(0)
    images = 0.5 + 0.5 * torch.rand(3, 1, 8, 8, generator=g)
    maps = torch.rand(3, 8, 8, generator=g)
    targets = torch.ones(3, dtype=torch.long)
    masks, has = torch.zeros(3, 8, 8, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)
    sink = {}
    # zero fill: MeanModel's output falls as pixels go black (the mean fill keeps its input's mean)
    plain = score("deletion_auc", MeanModel(), images, targets, maps, masks, has, steps=4, fill="zero", sink=sink)
    norm = score("deletion_auc", MeanModel(), images, targets, maps, masks, has, steps=4, fill="zero", normalise=True)
    c = sink["curve"]
    assert (c[:, 0] - c[:, -1] > 0.1).all() and torch.allclose(norm, (plain - c[:, -1]) / (c[:, 0] - c[:, -1]))
    # the mean fill leaves MeanModel's output where it was: no drop on any image, so NaN, never a ratio of noise
    assert torch.isnan(score("deletion_auc", MeanModel(), images, targets, maps, masks, has, steps=4,
                             normalise=True)).all()
    with pytest.raises(ValueError, match="min_drop"):
        score("deletion_auc", MeanModel(), images, targets, maps, masks, has, steps=4, normalise=True, min_drop=0)


def test_gather_writes_each_image_s_curve_ends_in_its_shard_order(tmp_path):
    """curve_ends.csv joins every aux curve row to the image id of the same row of its score shard,
    across shards. Deliberate bug caught: ids taken in sorted (or test-split) order instead of the
    shard's, which would give an image another image's unperturbed output."""
    from benchmark.run.gather import write_curves_and_sanity
    ids = [["z9", "a1", "m5"], ["b2", "c3"]]  # two shards, ids not sorted
    curves = [np.array([[0.9, 0.5, 0.1], [0.8, 0.4, 0.2], [0.7, 0.6, 0.3]]), np.array([[0.6, 0.3, 0.0], [0.5, 0.5, 0.5]])]
    sdir = tmp_path / "scores" / "m-gradcam-deletion_auc"
    sdir.mkdir(parents=True)
    for k, (shard_ids, curve) in enumerate(zip(ids, curves)):
        pd.DataFrame({"dataset": "d", "split": "test", "model": "m", "explainer": "gradcam", "metric": "deletion_auc",
                      "image_id": shard_ids, "value": curve.mean(1)}).to_csv(sdir / f"shard-{k:05d}.csv", index=False)
        np.savez(sdir / f"shard-{k:05d}.csv.aux.npz", curve=curve, fraction=np.linspace(0, 1, 3))
    cfg = SimpleNamespace(explain=SimpleNamespace(names=["gradcam"], for_model=lambda model: ["gradcam"]),
                          data=SimpleNamespace(dataset="d", splits={"test": "test"}),
                          report=SimpleNamespace(bootstrap=20, confidence=0.95), run=SimpleNamespace(seed=0))
    ctx = SimpleNamespace(cfg=cfg, run_dir=tmp_path, maps_dir=lambda model, key, e: (None, "k"),
                          metrics_for=lambda e: ["deletion_auc"], scores_dir=lambda model, e, metric, mkey: sdir,
                          shards=lambda n: [(0, 3), (3, 5)], test=None)
    write_curves_and_sanity(ctx, {"m": ("key", None)}, 5)
    ends = load_curve_ends(tmp_path / "curve_ends.csv").set_index("image_id")
    assert ends.loc["z9", ["start", "end"]].tolist() == [0.9, 0.1] and ends.loc["c3", ["start", "end"]].tolist() == [0.5, 0.5]
    assert ends.loc["b2", "end"] == 0.0 and len(ends) == 5 and (tmp_path / "curves.csv").exists()
