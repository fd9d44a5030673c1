"""RSNA (DICOM files written here with pydicom) and the CSV manifest, on generated fixtures."""
import numpy as np
import pytest
from PIL import Image

from cxr_xai_bench.datasets import build_dataset

LABELS = """patientId,x,y,width,height,Target
p-normal,,,,,0
p-one,10,20,30,40,1
p-two,0,0,8,8,1
p-two,50,50,10,10,1
"""


def _dicom(path, pixels):
    import pydicom  # a dependency of the package: a missing one fails, never skips
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return pydicom


@pytest.fixture
def rsna_root(tmp_path):
    (tmp_path / "stage_2_train_images").mkdir()
    (tmp_path / "stage_2_train_labels.csv").write_text(LABELS)
    rng = np.random.default_rng(0)
    for pid in ("p-normal", "p-one", "p-two"):
        _dicom(tmp_path / "stage_2_train_images" / f"{pid}.dcm", rng.integers(0, 255, (64, 64)))
    return tmp_path


def test_rsna_boxes_become_masks_and_target0_is_normal(rsna_root):
    ds = build_dataset("rsna", split="all", size=64, root=str(rsna_root), fractions={"all": 1.0})
    by_id = {ds[i].id: ds[i] for i in range(len(ds))}
    assert set(by_id) == {"p-normal", "p-one", "p-two"}
    normal, one, two = by_id["p-normal"], by_id["p-one"], by_id["p-two"]
    assert normal.label == 0 and normal.lesion_mask is not None and not normal.lesion_mask.any()
    assert one.label == 1 and one.lesion_mask.sum() == 30 * 40
    assert one.lesion_mask[20:60, 10:40].all()
    assert two.lesion_mask.sum() == 64 + 100, "two boxes: their union"
    assert one.image.shape == (1, 64, 64) and 0 <= one.image.min() and one.image.max() <= 1


def test_rsna_splits_partition_patients(rsna_root):
    sizes = []
    for split in ("train", "val", "test"):
        try:
            sizes.append(len(build_dataset("rsna", split=split, size=32, root=str(rsna_root))))
        except ValueError as err:
            assert "is empty" in str(err)
            sizes.append(0)
    assert sum(sizes) == 3


def test_rsna_errors_name_the_file(rsna_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="stage_2_train_labels.csv"):
        build_dataset("rsna", root=str(tmp_path / "nowhere"))
    (rsna_root / "stage_2_train_images" / "p-one.dcm").write_bytes(b"not a dicom")
    ds = build_dataset("rsna", split="all", size=32, root=str(rsna_root), fractions={"all": 1.0})
    with pytest.raises(ValueError, match="p-one.dcm"):
        ds[ds.ids.index("p-one")]


def test_rsna_reads_the_real_label_format(tmp_path):
    """The challenge's CSV: header as published, empty box fields on Target 0 rows."""
    (tmp_path / "stage_2_train_labels.csv").write_text(
        "patientId,x,y,width,height,Target\n"
        "0004cfab-14fd-4e49-80ba-63a80b6bddd6,,,,,0\n"
        "00436515-870c-4b36-a041-de91049b9ab4,264.0,152.0,213.0,379.0,1\n"
        "00436515-870c-4b36-a041-de91049b9ab4,562.0,152.0,256.0,453.0,1\n")
    ds = build_dataset("rsna", split="all", root=str(tmp_path), fractions={"all": 1.0})
    assert ds.labels() == [0, 1] and len(ds.boxes["00436515-870c-4b36-a041-de91049b9ab4"]) == 2


def _png(path, shape=(32, 32), value=None):
    arr = np.full(shape, value, np.uint8) if value is not None else (np.random.default_rng(1).random(shape) * 255).astype(np.uint8)
    Image.fromarray(arr).save(path)


def test_manifest_rows_masks_and_unknown(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    m = np.zeros((32, 32), np.uint8)
    m[:8, :8] = 255
    Image.fromarray(m).save(tmp_path / "a_mask.png")
    (tmp_path / "manifest.csv").write_text("image,label,mask,id,split\na.png,pneumonia,a_mask.png,A,test\nb.png,0,,B,test\n")
    ds = build_dataset("manifest", size=32, root=str(tmp_path))
    a, b = ds[0], ds[1]
    assert a.id == "A" and a.label == 1 and a.lesion_mask.sum() == 64
    assert b.label == 0 and b.lesion_mask is None, "an empty mask cell means not annotated"


def test_manifest_bad_input_is_named(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "small_mask.png", shape=(16, 16), value=0)
    (tmp_path / "m1.csv").write_text("image,label,split\nmissing.png,1,test\n")
    with pytest.raises(FileNotFoundError, match="line 2: image .*missing.png"):
        build_dataset("manifest", path=str(tmp_path / "m1.csv"))
    (tmp_path / "m2.csv").write_text("image,label\na.png,maybe\n")
    with pytest.raises(ValueError, match="label 'maybe'"):
        build_dataset("manifest", path=str(tmp_path / "m2.csv"))
    (tmp_path / "m3.csv").write_text("image,label,mask,split\na.png,1,small_mask.png,test\n")
    with pytest.raises(ValueError, match="small_mask.png has size"):
        build_dataset("manifest", path=str(tmp_path / "m3.csv"), size=32)[0]
    (tmp_path / "m4.csv").write_text("image,label,split\na.png,1,train\n")
    with pytest.raises(ValueError, match="no rows for split 'test'"):
        build_dataset("manifest", path=str(tmp_path / "m4.csv"), split="test")
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        build_dataset("manifest", path=str(tmp_path / "nothere.csv"))
