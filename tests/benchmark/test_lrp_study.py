"""docs/lrp_real_data.py, the evidence behind lrp's "auto" (issue 13), runs end to end on a tiny
slice of COVID-QU-Ex: every preset and reference scored on the selection split only."""
import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _study_module():
    spec = importlib.util.spec_from_file_location("lrp_real_data", ROOT / "docs" / "lrp_real_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lrp_study_scores_every_preset_on_the_selection_split(tmp_path, monkeypatch, covid_root):
    study = _study_module()
    # a model of another run in this process is not studied: each Runner holds its own (RunContext.state)
    from benchmark.run.runner import Runner
    import torch
    other = Runner(study.config(32, 24, 1), tmp_path / "other", torch.device("cpu"))
    from cxr_xai_bench.models import build_model
    ckpt = tmp_path / "other" / "checkpoints" / "vgg16_bn-x.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    other.ctx.state.keep_model(ckpt, "cpu", build_model("vgg16_bn", head="compact"))
    table = study.study(tmp_path / "run", size=32, n_train=24, epochs=1, n_images=12,
                        extra=(f"data.cache_dir='{tmp_path / 'cache'}'",)).set_index(["model", "method"])
    methods = [f"lrp:{p}" for p in study.PRESETS] + list(study.REFERENCES)
    assert sorted(table.index) == sorted((m, x) for m in ("vgg16_bn", "resnet50") for x in methods)
    lrp = table[table.index.get_level_values("method").str.startswith("lrp:")]
    assert np.isfinite(lrp["conservation"]).all() and table.loc[(slice(None), "gradcam"), "conservation"].isna().all()
    assert (table["images"] == 12).all() and (table["lesion_images"] > 0).all()
    assert (table.loc[(slice(None), "lung_prior"), "lung_mass"] == 1.0).all(), "the lung prior lies in the lungs"
    assert table["lung_mass"].between(0, 1).all() and table["deletion_auc"].between(0, 1).all()
    # the selection split, never the scored one: the run's manifest says which split was explained from
    import json
    roles = json.loads((tmp_path / "run" / "manifest.json").read_text())["split_roles"]
    assert roles["select"]["part"] == "held out" and roles["score"]["split"] == "val"
