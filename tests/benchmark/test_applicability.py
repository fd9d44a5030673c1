"""Applicability (issue 29, item 3): an explainer built from the image's lesion mask (the oracle) is not
applicable where that mask is empty or unknown. Its map there is all zero, and it used to be scored:
in the CPU record 40 of 67 images of its faithfulness and lung_mass "discrimination" were random
against an all-zero map. Now its scores there are NaN for every metric (the one scoring loop), the
report reads them as not applicable (context_gaps), and discrimination runs on lesion images only."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from benchmark.explainer_factory import explainer_from_config
from benchmark.metrics import score_maps
from benchmark.report import reliability as rel
from benchmark.report import stats
from benchmark.run import scoring
from benchmark.run.config import config_from_dict
from benchmark.run.context_gaps import context_gaps
from benchmark.store.files import MapShard
from cxr_xai_bench.explainers import EXPLAINERS


@pytest.fixture
def phantom():
    """8 phantom test images, alternately normal (empty mask) and pneumonia (a lesion)."""
    from cxr_xai_bench.datasets import collate
    from cxr_xai_bench.datasets.phantom import PhantomDataset
    return collate([PhantomDataset("test", size=32)[i] for i in range(8)])


class Mean(nn.Module):
    """A classifier that sees the image's mean brightness: deleting bright pixels lowers class 1."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([-m, m], 1) * 10


def _scores(cfg, test, explainer, metric, params, model):
    x = test.images
    maps = explainer_from_config(cfg, explainer).explain(model, x, test.labels, lesion_masks=test.lesion_masks,
                                                        lung_masks=test.lung_masks)
    task = scoring.ScoreTask(cfg, torch.device("cpu"), "m", explainer, metric, params, model, test, x,
                             np.arange(len(test)), (0, len(test)),
                             MapShard(maps.numpy(), list(test.ids), np.full(len(test), 0.01), np.zeros(len(test))),
                             lambda idx, _: test.labels[idx], None, "")
    return scoring.score_frame(task, scoring.score_images(task).values)


def test_only_mask_built_explainers_declare_it():
    assert EXPLAINERS["oracle"].from_lesion_mask
    assert not EXPLAINERS["mask_prior"].from_lesion_mask, "the training prior applies to every image"
    assert not any(EXPLAINERS[n].from_lesion_mask for n in ("random", "sobel", "center", "lung_prior", "gradcam"))


def test_oracle_scores_nan_without_a_lesion_for_every_metric(phantom):
    """Deliberate bug caught: the oracle's all-zero map on a normal image scored (lung_mass 0,
    deletion and insertion of nothing, a runtime), counted against random as a real explanation."""
    cfg = config_from_dict({"explain": {"batch_size": 3}})
    lesion = phantom.lesion_masks.flatten(1).any(1).numpy()
    assert lesion.any() and not lesion.all()
    for metric, params in [("lung_mass", {}), ("deletion_auc", {"steps": 4}), ("insertion_auc", {"steps": 4}),
                           ("relevance_mass", {}), ("seconds_per_image", {})]:
        oracle = _scores(cfg, phantom, "oracle", metric, params, Mean())["value"].to_numpy(float)
        assert np.isnan(oracle[~lesion]).all(), metric
        assert np.isfinite(oracle[lesion]).all(), metric
        if metric != "relevance_mass":  # random is scored on every image, normal ones included
            assert np.isfinite(_scores(cfg, phantom, "random", metric, params, Mean())["value"].to_numpy(float)).all()


def test_discrimination_runs_on_lesion_images_only(phantom):
    """Deliberate bug caught: discrimination counting the normal images, where oracle's map is empty."""
    cfg = config_from_dict({"explain": {"batch_size": 4}})
    frames = [_scores(cfg, phantom, e, m, p, Mean()) for e in ("random", "oracle")
              for m, p in [("lung_mass", {}), ("deletion_auc", {"steps": 4})]]
    scores = pd.concat(frames, ignore_index=True)
    disc = rel.discrimination(scores).set_index("metric")
    n_lesion = int(phantom.lesion_masks.flatten(1).any(1).sum())
    assert disc.loc["lung_mass", "n"] == disc.loc["deletion_auc", "n"] == n_lesion == 4
    # the report reads the oracle's NaNs as not applicable, never as its failures, and keeps the
    # normal images in random's numbers
    gaps = context_gaps(cfg, phantom)
    assert gaps == {"oracle": [i for i, a in zip(phantom.ids, phantom.lesion_masks.flatten(1).any(1)) if not a]}
    summary = stats.summarise(scores, 50, 0.95, 0, gaps).set_index(["explainer", "metric"])
    assert summary.loc[("random", "deletion_auc"), "n"] == len(phantom)
    assert summary.loc[("oracle", "deletion_auc"), "n"] == n_lesion
    assert summary.loc[("oracle", "deletion_auc"), "n_failed"] == 0


def test_unannotated_images_are_not_applicable_either(phantom):
    from cxr_xai_bench.datasets import Batch
    test = Batch(phantom.images, phantom.labels, phantom.lesion_masks, torch.tensor([False] + [True] * 7),
                 phantom.lung_masks, list(phantom.ids))
    cfg = config_from_dict({"explain": {"batch_size": 8, "missing_context": "nan"}})
    v = _scores(cfg, test, "oracle", "lung_mass", {}, None)["value"].to_numpy(float)
    lesion = (test.has_mask & test.lesion_masks.flatten(1).any(1)).numpy()
    assert np.isnan(v[~lesion]).all() and np.isfinite(v[lesion]).all()
    assert context_gaps(cfg, test)["oracle"] == [i for i, a in zip(test.ids, lesion) if not a]


def test_score_maps_leaves_the_oracle_out_where_there_is_no_lesion(phantom):
    cfg = config_from_dict({})
    oracle = explainer_from_config(cfg, "oracle")
    maps = oracle.explain(None, phantom.images, phantom.labels, lesion_masks=phantom.lesion_masks)
    table = score_maps(Mean(), phantom.images, phantom.labels, maps, phantom.lesion_masks,
                       metrics=["deletion_auc"], params={"deletion_auc": {"steps": 4}}, explainer=oracle)
    lesion = phantom.lesion_masks.flatten(1).any(1).numpy()
    assert np.isnan(table.value.to_numpy()[~lesion]).all() and np.isfinite(table.value.to_numpy()[lesion]).all()
    same = score_maps(Mean(), phantom.images, phantom.labels, maps, phantom.lesion_masks, metrics=["deletion_auc"],
                      params={"deletion_auc": {"steps": 4}})  # no explainer named: every image scored
    assert np.isfinite(same.value.to_numpy()).all()
