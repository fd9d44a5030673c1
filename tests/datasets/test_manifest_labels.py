"""Manifest label mapping (data.params.labels) and column names (data.params.columns): a user's own
label values and column names work without editing the CSV; an unmapped value is a clear error."""
import numpy as np
import pytest
from PIL import Image

from cxr_xai_bench.datasets import build_dataset


def _images(folder, n):
    for k in range(n):
        Image.fromarray(np.full((8, 8), k * 20, np.uint8)).save(folder / f"{k}.png")


def _write(folder, header, rows):
    (folder / "manifest.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return str(folder / "manifest.csv")


FINDINGS = ["covid19_pneumonia", "other_pneumonia", "normal", "Normal ", "COVID19_pneumonia", "normal"]
MAP = {"covid19_pneumonia": 1, "other_pneumonia": 1, "normal": 0}


def test_label_mapping_and_column_names(tmp_path):
    _images(tmp_path, 6)
    path = _write(tmp_path, "path,finding,fold,subject",
                  [f"{k}.png,{f},{'test' if k < 4 else 'train'},p{k}" for k, f in enumerate(FINDINGS)])
    ds = build_dataset("manifest", path=path, split="test", size=8, labels=MAP,
                       columns={"image": "path", "label": "finding", "split": "fold", "patient": "subject"})
    assert ds.labels() == [1, 1, 0, 0]
    assert [ds[i].id for i in range(len(ds))] == ["0", "1", "2", "3"]
    assert build_dataset("manifest", path=path, split="train", size=8, labels=MAP,
                         columns={"image": "path", "label": "finding", "split": "fold"}).labels() == [1, 0]


def test_unmapped_label_names_the_value_and_the_mapping(tmp_path):
    _images(tmp_path, 3)
    path = _write(tmp_path, "image,label,split", ["0.png,covid19_pneumonia,test", "1.png,normal,test",
                                                  "2.png,tuberculosis,test"])
    # without a mapping: the value, the accepted values and the key to set
    with pytest.raises(ValueError, match=r"label 'covid19_pneumonia' is not in one of .*data\.params\.labels"):
        build_dataset("manifest", path=path, split="test", size=8)
    with pytest.raises(ValueError, match=r"line 4: label 'tuberculosis' is not in data\.params\.labels "
                                         r"\{'covid19_pneumonia': 1"):
        build_dataset("manifest", path=path, split="test", size=8, labels=MAP)
    with pytest.raises(ValueError, match="labels map to 1 \\(pneumonia\\) or 0"):
        build_dataset("manifest", path=path, split="test", size=8, labels={"normal": 2})


def test_bad_column_names(tmp_path):
    _images(tmp_path, 2)
    path = _write(tmp_path, "path,label,split", ["0.png,1,test", "1.png,0,test"])
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['image'\].*data\.params\.columns"):
        build_dataset("manifest", path=path, split="test", size=8)
    with pytest.raises(ValueError, match=r"name column\(s\) the file lacks"):
        build_dataset("manifest", path=path, split="test", size=8, columns={"image": "file"})
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['picture'\]"):
        build_dataset("manifest", path=path, split="test", size=8, columns={"picture": "path"})
    assert len(build_dataset("manifest", path=path, split="test", size=8, columns={"image": "path"})) == 2
