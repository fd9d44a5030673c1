"""Manifest splits never leak: no split column is refused, a seeded split is disjoint and
deterministic and keeps patients together, and ids shared between splits are refused."""
import numpy as np
import pytest
from PIL import Image

from cxr_xai_bench.datasets import build_dataset

SPLITS = ("train", "val", "test")


def _images(folder, n):
    for k in range(n):
        Image.fromarray(np.full((8, 8), k % 256, np.uint8)).save(folder / f"{k}.png")


def _write(folder, header, rows, name="manifest.csv"):
    (folder / name).write_text(header + "\n" + "\n".join(rows) + "\n")
    return str(folder / name)


def _ids(path, **params):
    """Ids per split, {} for a split the manifest leaves empty."""
    out = {}
    for split in SPLITS:
        try:
            ds = build_dataset("manifest", path=path, split=split, size=8, **params)
        except ValueError as err:
            assert "no rows for split" in str(err)
            out[split] = []
            continue
        out[split] = [ds[i].id for i in range(len(ds))]
    return out


def test_manifest_without_split_column_is_refused(tmp_path):
    _images(tmp_path, 4)
    path = _write(tmp_path, "image,label", [f"{k}.png,{k % 2}" for k in range(4)])
    for split in SPLITS:  # before: every row in every split (train = val = test)
        with pytest.raises(ValueError, match=r"manifest\.csv has no 'split' column.*split_by"):
            build_dataset("manifest", path=path, split=split, size=8)


def test_empty_split_cells_are_refused_naming_the_lines(tmp_path):
    _images(tmp_path, 10)
    rows = [f"{k}.png,{k % 2},{'test' if k < 2 else ''}" for k in range(10)]
    path = _write(tmp_path, "image,label,split", rows)
    with pytest.raises(ValueError, match=r"manifest\.csv: 8 row\(s\) have an empty 'split' cell \(line\(s\) 4, 5, 6, 7, 8 and 3 more\)"):
        build_dataset("manifest", path=path, split="train", size=8)


def test_ids_shared_across_splits_are_refused_naming_them(tmp_path):
    _images(tmp_path, 4)
    rows = ["0.png,0,train,A", "1.png,1,test,A", "2.png,0,train,B", "3.png,1,val,C"]
    path = _write(tmp_path, "image,label,split,id", rows)
    with pytest.raises(ValueError, match=r"1 id\(s\) listed in more than one split.*A in \['test', 'train'\]"):
        build_dataset("manifest", path=path, split="train", size=8)
    # no id column: the id is the image file's stem, so the same file twice is the same id
    rows = ["0.png,0,train", "0.png,0,test", "1.png,1,val"]
    path = _write(tmp_path, "image,label,split", rows, "m2.csv")
    with pytest.raises(ValueError, match=r"id\(s\) listed in more than one split.*0 in \['test', 'train'\]"):
        build_dataset("manifest", path=path, split="test", size=8)
    # the same image file under two ids in two splits
    rows = ["0.png,0,train,X", "0.png,0,test,Y", "1.png,1,val,Z"]
    path = _write(tmp_path, "image,label,split,id", rows, "m3.csv")
    with pytest.raises(ValueError, match=r"image\(s\) listed in more than one split.*0\.png"):
        build_dataset("manifest", path=path, split="test", size=8)


def test_patients_in_two_splits_of_the_column_are_refused(tmp_path):
    _images(tmp_path, 3)
    rows = ["0.png,0,train,P1", "1.png,1,test,P1", "2.png,1,val,P2"]
    path = _write(tmp_path, "image,label,split,patient", rows)
    with pytest.raises(ValueError, match=r"patient\(s\) of column 'patient' have images in more than one split: P1"):
        build_dataset("manifest", path=path, split="test", size=8)


@pytest.fixture
def unsplit(tmp_path):
    """60 images of up to 20 patients (several images each), labels mixed, no split column."""
    rng = np.random.default_rng(0)
    _images(tmp_path, 60)
    patients = np.sort(rng.integers(0, 20, 60))
    rows = [f"{k}.png,{int(rng.random() < 0.4)},img{k:02d},P{p:02d}" for k, p in enumerate(patients)]
    return tmp_path, _write(tmp_path, "image,label,id,patient", rows), dict(zip((f"img{k:02d}" for k in range(60)), patients))


@pytest.mark.parametrize("split_by", ["image", "patient"])
def test_seeded_split_is_deterministic_disjoint_and_complete(unsplit, split_by):
    folder, path, _ = unsplit
    a = _ids(path, split_by=split_by, split_seed=3)
    b = _ids(path, split_by=split_by, split_seed=3)
    assert a == b, "same seed, same split"
    sets = {s: set(v) for s, v in a.items()}
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
    assert sets["train"] | sets["val"] | sets["test"] == {f"img{k:02d}" for k in range(60)}
    assert all(a[s] for s in SPLITS) and len(a["train"]) > len(a["val"])
    # the row order of the file does not matter
    lines = (folder / "manifest.csv").read_text().splitlines()
    shuffled = _write(folder, lines[0], lines[1:][::-1], "reversed.csv")
    assert {s: set(v) for s, v in _ids(shuffled, split_by=split_by, split_seed=3).items()} == sets
    assert _ids(path, split_by=split_by, split_seed=4) != a, "another seed, another split"


def test_seeded_split_by_image_follows_the_fractions_per_label(tmp_path):
    _images(tmp_path, 100)
    path = _write(tmp_path, "image,label", [f"{k}.png,{int(k < 40)}" for k in range(100)])
    ids = _ids(path, split_by="image", split_fractions={"train": 0.5, "val": 0.25, "test": 0.25})
    labels = {f"{k}": int(k < 40) for k in range(100)}
    assert [len(ids[s]) for s in SPLITS] == [50, 25, 25]
    assert [sum(labels[i] for i in ids[s]) for s in SPLITS] == [20, 10, 10], "stratified by label"


def test_seeded_split_by_patient_keeps_patients_together(unsplit):
    _, path, patient_of = unsplit
    ids = _ids(path, split_by="patient", split_seed=0)
    split_of_patient = {}
    for split, members in ids.items():
        for i in members:
            assert split_of_patient.setdefault(patient_of[i], split) == split, f"patient {patient_of[i]} in two splits"
    assert set(split_of_patient) == set(patient_of.values())


def test_seeded_split_errors(unsplit, tmp_path):
    _, path, _ = unsplit
    with pytest.raises(ValueError, match=r"no patient column 'subject'"):
        build_dataset("manifest", path=path, split="train", size=8, split_by="patient", patient_column="subject")
    with pytest.raises(ValueError, match=r"split_by 'patients' is not one of"):
        build_dataset("manifest", path=path, split="train", size=8, split_by="patients")
    with pytest.raises(ValueError, match=r"summing to 1"):
        build_dataset("manifest", path=path, split="train", size=8, split_by="image",
                      split_fractions={"train": 0.7, "test": 0.7})
    with pytest.raises(ValueError, match=r"split 'val' is not one of the split_fractions"):
        build_dataset("manifest", path=path, split="val", size=8, split_by="image",
                      split_fractions={"train": 0.8, "test": 0.2})
    _images(tmp_path, 3)
    both = _write(tmp_path, "image,label,split", ["0.png,0,train", "1.png,1,test", "2.png,1,val"], "both.csv")
    with pytest.raises(ValueError, match=r"filled 'split' column and split_by = 'image'"):
        build_dataset("manifest", path=both, split="train", size=8, split_by="image")
    empty_patient = _write(tmp_path, "image,label,patient", ["0.png,0,P1", "1.png,1,", "2.png,1,P2"], "np.csv")
    with pytest.raises(ValueError, match=r"1 row\(s\) have an empty 'patient' cell \(line\(s\) 3\)"):
        build_dataset("manifest", path=empty_patient, split="train", size=8, split_by="patient")


def test_an_all_empty_split_column_may_be_split_by_seed(tmp_path):
    _images(tmp_path, 20)
    path = _write(tmp_path, "image,label,split", [f"{k}.png,{k % 2}," for k in range(20)])
    ids = _ids(path, split_by="image")
    assert sorted(sum(ids.values(), []), key=int) == [str(k) for k in range(20)]
