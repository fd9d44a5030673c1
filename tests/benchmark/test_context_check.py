"""Context an explainer needs (lung masks, lesion masks, the training prior) is checked right after
the data is loaded and before any training: the error names the explainer, what is missing and for
how many test images (issue 12, item 5)."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.run.config import Config
from benchmark.run.validate import check_context, validate
from cxr_xai_bench.datasets import Batch


def _batch(n=5, lungs_missing=(), masks_missing=()):
    lungs = torch.ones(n, 8, 8, dtype=torch.bool)
    for i in lungs_missing:
        lungs[i] = False
    has_mask = torch.tensor([i not in masks_missing for i in range(n)])
    return Batch(torch.rand(n, 1, 8, 8), torch.zeros(n, dtype=torch.long), torch.zeros(n, 8, 8, dtype=torch.bool),
                 has_mask, lungs, [f"img{i}" for i in range(n)])


def test_missing_lung_mask_names_explainer_what_and_how_many():
    cfg = Config()
    cfg.explain.names = ["random", "lung_prior", "mask_prior"]
    with pytest.raises(ValueError, match=r"lung_prior needs 'lung_masks', missing for 1 of 5 test images "
                                         r"\(e\.g\. \['img3'\]\)") as err:
        check_context(cfg, _batch(lungs_missing=[3]), prior_path="prior.npy")
    assert "mask_prior" not in str(err.value)
    with pytest.raises(ValueError, match=r"mask_prior needs 'train_mean_mask', missing for 5 of 5"):
        check_context(cfg, _batch(), prior_path="")
    cfg.explain.names = ["random", "oracle"]
    with pytest.raises(ValueError, match=r"oracle needs 'lesion_masks', missing for 2 of 5"):
        check_context(cfg, _batch(masks_missing=[0, 4]))
    check_context(cfg, _batch())  # all there: no error


def test_nan_mode_fills_the_context_and_scores_nan():
    from benchmark.run.missing_context import job_context, nan_where_missing
    cfg = Config()
    cfg.explain.names = ["random", "lung_prior"]
    cfg.explain.missing_context = "nan"
    test = _batch(lungs_missing=[1, 3])
    assert check_context(cfg, test, prior_path="p.npy") == {"lung_prior": 2}
    context = job_context(cfg, test, slice(0, 4), None)
    assert context["lung_masks"].shape == (4, 8, 8) and not context["lung_masks"][1].any()
    assert context["train_mean_mask"].shape == (8, 8)
    values = nan_where_missing(cfg, "lung_prior", test, 1, 4, "", np.ones(3))
    assert np.isnan(values).tolist() == [True, False, True]
    assert nan_where_missing(cfg, "random", test, 1, 4, "", np.ones(3)).tolist() == [1, 1, 1]
    cfg.explain.missing_context = "error"
    assert job_context(cfg, test, slice(0, 4), None)["lung_masks"] is None


def test_missing_context_key_is_validated():
    cfg = Config()
    cfg.explain.missing_context = "ignore"  # "error" and "nan" are the choices
    with pytest.raises(ValueError, match="explain.missing_context 'ignore'"):
        validate(cfg)


HOLEY = textwrap.dedent('''
    from dataclasses import replace
    from cxr_xai_bench.datasets import register_dataset
    from cxr_xai_bench.datasets.phantom import PhantomDataset

    @register_dataset("holey_phantom")
    class Holey(PhantomDataset):
        """The phantom without the lung masks of its pneumonia test images."""
        def __getitem__(self, index):
            s = super().__getitem__(index)
            return replace(s, lung_mask=None) if self.split == "test" and s.label == 1 else s
''')


def _run_holey(tmp_path, *overrides):
    """The smoke run of lung_prior and random on resnet50 over the holey phantom (a plug-in), with
    `overrides` (--set) on top, in tmp_path/run: (the finished process, the run folder)."""
    (tmp_path / "holey.py").write_text(HOLEY)
    out = tmp_path / "run"
    sets = ["data.dataset=holey_phantom", "explain.names=['lung_prior','random']", "models.names=['resnet50']",
            *overrides]
    r = subprocess.run([sys.executable, "-m", "benchmark", "run", "--preset", "smoke", "--plugin", "holey.py",
                        *[a for s in sets for a in ("--set", s)], "--out", str(out)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600, env={**os.environ, "TQDM_DISABLE": "1"})
    return r, out


@pytest.mark.integration
def test_run_stops_before_training(tmp_path):
    """A plug-in dataset whose pneumonia test images lack lung masks: lung_prior stops the run before training."""
    r, out = _run_holey(tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "lung_prior needs 'lung_masks', missing for 2 of 4 test images" in r.stderr
    assert not (out / "checkpoints").exists()
    assert "train" not in ((out / "progress.log").read_text() if (out / "progress.log").exists() else "")


@pytest.mark.integration
def test_nan_mode_scores_those_images_nan(tmp_path):
    r, out = _run_holey(tmp_path, 'explain.missing_context="nan"', "metrics.names=['deletion_auc']",
                        "metrics.skip={}", "data.limit={train=8, val=4, test=4}")
    assert r.returncode == 0, r.stderr[-2000:]
    scores = pd.read_csv(out / "scores.csv")
    lung = scores[scores.explainer == "lung_prior"].sort_values("image_id")
    labels = lung.image_id.str[-1].astype(int) % 2  # phantom: odd indices are pneumonia
    # the two pneumonia images lack lung masks: NaN for lung_prior only
    assert lung.value.isna().tolist() == (labels == 1).tolist() and labels.sum() == 2
    assert scores[scores.explainer == "random"].value.notna().all()
    board = pd.read_csv(out / "report" / "leaderboard.csv")
    row = board[board.explainer == "lung_prior"].iloc[0]
    assert row.n_nan == 2
    # not applicable, not failed: random keeps all four images, lung_prior is scored on its two
    gaps = json.loads((out / "manifest.json").read_text())["context_gaps"]
    assert sorted(gaps) == ["lung_prior"] and sorted(gaps["lung_prior"]) == sorted(lung.image_id[labels == 1])
    assert (row.n, row.n_failed) == (2, 0)
    assert board[board.explainer == "random"].iloc[0].n == 4
    assert "not applicable to it" in (out / "report" / "report.md").read_text()
