"""Bad files end to end: a clear error naming the file, or, when asked, skipped and listed."""
import numpy as np
import pytest
from PIL import Image

from benchmark.run.config import load_config
from benchmark.run.data import load_split


@pytest.fixture
def manifest_with_corrupt_file(tmp_path):
    for k in range(6):
        Image.fromarray((np.random.default_rng(k).random((32, 32)) * 255).astype(np.uint8)).save(tmp_path / f"{k}.png")
    (tmp_path / "3.png").write_bytes(b"\x89PNG\r\n\x1a\ncut short")
    rows = "\n".join(f"{k}.png,{k % 2},test" for k in range(6))
    (tmp_path / "manifest.csv").write_text("image,label,split\n" + rows + "\n")
    return tmp_path


def _cfg(root, *extra):
    return load_config(overrides=["data.dataset='manifest'", f"data.root='{root}'", "data.size=32",
                                  "data.limit={train=0, val=0, test=0}", f"data.cache_dir='{root / 'cache'}'", *extra])


def test_corrupt_file_stops_with_its_name(manifest_with_corrupt_file):
    with pytest.raises(ValueError, match=r"3\.png.*data.skip_bad"):
        load_split(_cfg(manifest_with_corrupt_file), "test")


def test_skip_bad_skips_and_lists_the_file(manifest_with_corrupt_file):
    skipped = []
    batch = load_split(_cfg(manifest_with_corrupt_file, "data.skip_bad=true"), "test", skipped)
    assert len(batch) == 5 and "3" not in batch.ids
    assert len(skipped) == 1 and "3.png" in skipped[0]["error"]
    again = []
    load_split(_cfg(manifest_with_corrupt_file, "data.skip_bad=true"), "test", again)
    assert again == skipped, "the cache remembers what was skipped"


def _cli(args, cwd):
    import os
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TQDM_DISABLE": "1"})


@pytest.mark.integration  # the CLI in a subprocess
def test_malformed_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nname = 'x\n")
    r = _cli(["run", "--config", str(bad), "--out", str(tmp_path / "x")], tmp_path)
    assert r.returncode == 2 and "bad.toml is not valid TOML" in r.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.integration  # the CLI in a subprocess
def test_missing_dataset_folder_names_it(tmp_path):
    r = _cli(["run", "--preset", "smoke", "--set", "data.dataset='covid_qu_ex'", "--set", f"data.root='{tmp_path / 'nowhere'}'",
              "--out", str(tmp_path / "x")], tmp_path)
    assert r.returncode == 2 and str(tmp_path / "nowhere") in r.stderr, r.stderr[-2000:]


@pytest.mark.integration  # the CLI in a subprocess
def test_wrong_enum_value_lists_the_allowed_ones(tmp_path):
    r = _cli(["run", "--preset", "smoke", "--set", "run.maps_dtype='int8'", "--out", str(tmp_path / "x")], tmp_path)
    assert r.returncode == 2 and "run.maps_dtype" in r.stderr and "float16" in r.stderr


@pytest.mark.integration  # the CLI in a subprocess
def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    import shutil
    args = ["--preset", "smoke", "--set", "explain.names=['random']", "--set", "metrics.names=['pointing_game']",
            "--out", str(tmp_path / "run")]
    r = _cli(["train", *args], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    ckpts = {p.name.split("-")[0]: p for p in (tmp_path / "run" / "checkpoints").glob("*.pt")}
    shutil.copy(ckpts["resnet50"], ckpts["vgg16_bn"])  # a ResNet50 checkpoint where the VGG one belongs
    r = _cli(["run", *args], tmp_path)
    assert r.returncode == 2 and ckpts["vgg16_bn"].name in r.stderr and "does not fit" in r.stderr, r.stderr[-2000:]


def test_pretrained_file_of_another_architecture_is_a_clear_error(tmp_path):
    import torch
    from cxr_xai_bench.models import build_model
    path = tmp_path / "resnet.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(ValueError, match="do not fit this architecture"):
        build_model("vgg16_bn", pretrained=str(path), head="compact")
