"""lung_mass (issue 13, item 3): the share of positive relevance inside the lung masks, a shortcut
check scored on every image with a lung mask (normals and unannotated pneumonia included), 0 for a
map without positive relevance, NaN without a lung mask; worked out by hand and through a run."""
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from benchmark.metrics import get_metric, score


def _lung(maps, lungs=None, masks=None, has_mask=None):
    n = len(maps)
    return score("lung_mass", None, torch.zeros(n, 1, *maps.shape[1:]), torch.zeros(n, dtype=torch.long), maps,
                 masks, has_mask, lung_masks=lungs)


def test_registry_entry():
    spec = get_metric("lung_mass")
    assert spec.category == "localisation" and spec.higher_is_better
    assert spec.needs_lung and not spec.needs_mask, "reads the lung masks, not the lesion masks"


def test_by_hand_on_a_4x4_map():
    # lungs: the left two columns of rows 0-2 (6 pixels)
    lungs = torch.zeros(1, 4, 4, dtype=torch.bool)
    lungs[0, 0:3, 0:2] = True
    maps = torch.tensor([[[1.0, 2.0, 0.0, 4.0],
                          [0.0, -3.0, 1.0, 0.0],
                          [0.5, 0.5, 0.0, 0.0],
                          [0.0, 0.0, 0.0, -2.0]]])
    # positive relevance: 1 + 2 + 4 + 1 + 0.5 + 0.5 = 9; inside the lungs: 1 + 2 + 0.5 + 0.5 = 4 (the -3 is dropped)
    assert _lung(maps, lungs).item() == pytest.approx(4 / 9)
    # the whole map inside the lungs: 1; all of it outside (a marker in the corner): 0
    inside = torch.zeros(1, 4, 4)
    inside[0, 1, 1] = 2.0
    assert _lung(inside, lungs).item() == pytest.approx(1.0)
    marker = torch.zeros(1, 4, 4)
    marker[0, 3, 3] = 5.0
    assert _lung(marker, lungs).item() == 0.0


def test_degenerate_maps_score_zero_and_no_lung_mask_is_nan():
    lungs = torch.zeros(4, 4, 4, dtype=torch.bool)
    lungs[:3, 1:3, 1:3] = True  # image 3 has no lung mask (an all-False row, as Batch stores it)
    maps = torch.stack([torch.zeros(4, 4), -torch.ones(4, 4), torch.ones(4, 4), torch.ones(4, 4)])
    v = _lung(maps, lungs)
    assert v.dtype == torch.float32 and v.shape == (4,)
    assert v[0].item() == 0.0 and v[1].item() == 0.0, "no positive relevance: no mass inside the lungs"
    assert v[2].item() == pytest.approx(4 / 16), "a flat map scores the lungs' share of the image"
    assert torch.isnan(v[3])
    assert torch.isnan(_lung(maps)).all(), "no lung masks passed: none known, NaN"
    with pytest.raises(ValueError, match="lung_masks"):
        _lung(maps, lungs[:, :2])


def test_scored_without_a_lesion_mask():
    """Unlike the lesion metrics: normal (empty mask) and unannotated images are scored."""
    lungs = torch.ones(2, 4, 4, dtype=torch.bool)
    maps = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0))
    v = _lung(maps, lungs, masks=torch.zeros(2, 4, 4, dtype=torch.bool), has_mask=torch.tensor([True, False]))
    assert torch.allclose(v, torch.ones(2))


def test_metric_code_covers_the_module_and_the_flag():
    from benchmark.run.context import metric_code
    from benchmark.store.code import module_closure
    code = module_closure(*metric_code("lung_mass"))  # the score key hashes this closure
    assert "benchmark.metrics.localisation" in code, "editing the metric re-scores it"
    assert "benchmark.metrics.registry" in code and "benchmark.run.jobs" in code, "so does the needs_lung plumbing"


@pytest.mark.integration
def test_smoke_run_scores_lung_mass_on_every_image(tmp_path):
    from benchmark.run.config import load_config
    assert "lung_mass" in load_config(preset="smoke").metrics.names, "a default metric"
    out = tmp_path / "smoke"
    r = subprocess.run([sys.executable, "-m", "benchmark", "score", "--preset", "smoke", "--out", str(out),
                        "--set", "explain.names=['lung_prior','random','oracle']",
                        "--set", "metrics.names=['lung_mass','relevance_mass']",
                        "--set", f"data.cache_dir='{tmp_path / 'cache'}'"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    s = pd.read_csv(out / "scores.csv")
    lung = s[s.metric == "lung_mass"].set_index(["model", "explainer", "image_id"])["value"]
    assert len(lung) == 2 * 3 * 4, "two models, three explainers, four test images"
    applies = lung.drop(index="oracle", level="explainer")
    assert applies.notna().all(), "every phantom image has lung masks: scored, normal images included"
    assert (lung.xs("lung_prior", level="explainer") == 1).all(), "the lung mask itself lies inside the lungs"
    assert lung.dropna().between(0, 1).all()
    # relevance_mass leaves the normal images out; lung_mass does not
    rel = s[s.metric == "relevance_mass"]
    assert rel["value"].isna().sum() > 0
    # the oracle (built from the lesion mask) is not applicable to an image without a lesion, for every
    # metric (issue 29, item 3): NaN on exactly the images relevance_mass leaves out
    rel_oracle = rel[rel.explainer == "oracle"].set_index(["model", "image_id"])["value"]
    oracle = lung.xs("oracle", level="explainer")
    assert oracle.isna().any() and oracle.isna().equals(rel_oracle.reindex(oracle.index).isna())
