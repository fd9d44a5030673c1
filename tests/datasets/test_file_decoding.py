"""Files read right, or refused with a reason (issue 27): bit depth, colour, JPEG, DICOM LUTs and
MONOCHROME1, multi-frame refusal, mask values, resize modes, per-file metadata. Every file is made
here, and every expected value is worked out by hand from the numbers written into it."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cxr_xai_bench.datasets import build_dataset
from cxr_xai_bench.datasets.imageio import decode, decode_mask, resize


def _dicom(path, stored, photometric="MONOCHROME2", bits=12, frames=1, **tags):
    """A single-channel DICOM written with pydicom: uint16 stored values, `bits` of them significant."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    stored = np.asarray(stored, dtype=np.uint16)
    ds.Rows, ds.Columns = stored.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# --- images ------------------------------------------------------------------------------------

def test_grey_png_8_and_16_bit_are_scaled_by_their_bit_depth(tmp_path):
    ramp8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(ramp8).save(tmp_path / "r8.png")
    d8 = decode(tmp_path / "r8.png")
    assert d8.bit_depth == 8 and d8.pixels.dtype == np.float32
    assert np.array_equal(d8.pixels, np.arange(256, dtype=np.float32).reshape(16, 16) / np.float32(255))

    ramp16 = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)  # 0..65535
    Image.fromarray(ramp16).save(tmp_path / "r16.png")
    d16 = decode(tmp_path / "r16.png")
    assert d16.bit_depth == 16
    assert np.allclose(d16.pixels, np.arange(256).reshape(16, 16) / 255, atol=1e-7)  # k*257/65535 = k/255
    assert abs(float(d16.pixels.mean()) - 0.5) < 1e-6  # the old convert("L") gave mean 254.5/255

    dark = np.full((4, 6), 1000, np.uint16)
    dark[0, 0] = 0
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    px = decode(tmp_path / "dark16.png").pixels
    assert px.max() == pytest.approx(1000 / 65535) and px.min() == 0  # never min-maxed: dark stays dark


def test_tiff_8_and_16_bit(tmp_path):
    a16 = np.array([[0, 65535], [13107, 52428]], dtype=np.uint16)
    Image.fromarray(a16).save(tmp_path / "a.tif")
    d = decode(tmp_path / "a.tif")
    assert d.bit_depth == 16
    assert np.allclose(d.pixels, [[0, 1], [0.2, 0.8]], atol=1e-7)  # 13107 = 65535/5
    Image.fromarray(np.array([[0, 51], [204, 255]], dtype=np.uint8)).save(tmp_path / "b.tiff")
    d = decode(tmp_path / "b.tiff")
    assert d.bit_depth == 8 and np.allclose(d.pixels, [[0, 0.2], [0.8, 1]], atol=1e-7)


def test_float_tiff_is_refused_naming_the_file(tmp_path):
    Image.fromarray(np.zeros((3, 3), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match=r"f\.tif.*no defined grey range"):
        decode(tmp_path / "f.tif")


def test_rgb_and_rgba_become_601_luma_alpha_ignored(tmp_path):
    # PIL: L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16, the fixed-point 0.299/0.587/0.114
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (200, 100, 50)  # (3919000 + 3847000 + 373550 + 32768) >> 16 = 124
    rgb[1, 1] = (255, 255, 255)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    rgba = np.dstack([rgb, np.array([[0, 255], [17, 255]], np.uint8)])  # alpha 0 on (0,0): ignored
    Image.fromarray(rgba, "RGBA").save(tmp_path / "ca.png")
    want = np.array([[124, 0], [0, 255]], np.float32) / 255
    for name in ("c.png", "ca.png"):
        d = decode(tmp_path / name)
        assert d.bit_depth == 8 and np.array_equal(d.pixels, want), name


def test_jpeg_grey_and_rgb(tmp_path):
    # a flat 8x8-aligned JPEG keeps its one value exactly (only the DC coefficient is non-zero)
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(tmp_path / "g.jpg", quality=95)
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(tmp_path / "c.jpeg", quality=95)
    for name in ("g.jpg", "c.jpeg"):
        d = decode(tmp_path / name)
        assert d.bit_depth == 8 and d.pixels.shape == (16, 16)
        assert np.array_equal(d.pixels, np.full((16, 16), 128 / 255, np.float32)), name


# --- DICOM -------------------------------------------------------------------------------------

# stored 12-bit values; slope 2, intercept -1024 gives modality values -1024, 500, 1000, 7166;
# window centre 1000.5, width 2001 (LINEAR: c - 0.5 = 1000, w - 1 = 2000) is the ramp over
# modality 0..2000, so by hand: 0 (below), 0.25, 0.5, 1 (above)
STORED = [[0, 762], [1012, 4095]]
WINDOWED = np.array([[0, 0.25], [0.5, 1]])
WINDOW = dict(RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=1000.5, WindowWidth=2001)


def test_dicom_monochrome2_with_rescale_and_window(tmp_path):
    d = decode(_dicom(tmp_path / "m2.dcm", STORED, **WINDOW))
    assert d.bit_depth == 12
    assert np.allclose(d.pixels, WINDOWED, atol=1e-6)


def test_dicom_monochrome1_is_inverted(tmp_path):
    d = decode(_dicom(tmp_path / "m1.dcm", STORED, photometric="MONOCHROME1", **WINDOW))
    assert np.allclose(d.pixels, 1 - WINDOWED, atol=1e-6)


def test_dicom_without_window_maps_the_stored_bit_range_not_min_max(tmp_path):
    # values 100..2047 of 12 bits: v / 4095 (min-max would give 0 and 1); the rescale shifts the
    # range with the values, so the intercept changes nothing
    stored = [[100, 2047], [4095, 0]]
    want = np.array(stored) / 4095
    assert np.allclose(decode(_dicom(tmp_path / "a.dcm", stored)).pixels, want, atol=1e-6)
    d = decode(_dicom(tmp_path / "b.dcm", stored, RescaleSlope=1, RescaleIntercept=-1024))
    assert np.allclose(d.pixels, want, atol=1e-6)
    partial = [[100, 200], [150, 100]]
    assert np.allclose(decode(_dicom(tmp_path / "c.dcm", partial)).pixels, np.array(partial) / 4095, atol=1e-6)


def test_dicom_voi_lut_sequence(tmp_path):
    from pydicom.dataset import Dataset
    item = Dataset()
    item.add_new(0x00283002, "US", [4, 0, 8])  # LUTDescriptor: 4 entries from stored value 0, 8-bit output
    item.add_new(0x00283006, "US", [0, 51, 204, 255])  # LUTData
    path = _dicom(tmp_path / "lut.dcm", [[0, 1], [2, 9]], bits=8, VOILUTSequence=[item])
    # 9 is past the last entry: the LUT's last value; the output 0..255 maps to 0..1
    assert np.allclose(decode(path).pixels, [[0, 0.2], [0.8, 1]], atol=1e-6)


def test_multi_frame_dicom_is_refused_naming_the_file(tmp_path):
    path = _dicom(tmp_path / "cine.dcm", np.zeros((2, 4, 4)), frames=2)
    with pytest.raises(ValueError, match=r"cine\.dcm has 2 frames"):
        decode(path)


# --- masks -------------------------------------------------------------------------------------

LESION = np.zeros((8, 8), bool)
LESION[2:4, 5:7] = True


@pytest.mark.parametrize("kind", ["0/1", "0/255", "bool"])
def test_two_valued_masks_any_non_zero_is_lesion(tmp_path, kind):
    arr = {"0/1": LESION.astype(np.uint8), "0/255": LESION.astype(np.uint8) * 255, "bool": LESION}[kind]
    path = tmp_path / "m.png"
    Image.fromarray(arr).save(path)
    if kind == "bool":
        assert Image.open(path).mode == "1"
    assert np.array_equal(decode_mask(path), LESION)
    # and through the resize the datasets use (8 -> 4 px: area of 2x2 blocks >= 0.5)
    small = resize(decode_mask(path), 4, mask=True)
    want = np.zeros((4, 4), bool)
    want[1, 2:4] = True
    assert np.array_equal(small.numpy(), want)


def test_three_valued_mask_needs_mask_values(tmp_path):
    arr = LESION.astype(np.uint8) * 2
    arr[0, 0] = 1  # a third value: 0 background, 1 something else, 2 lesion
    path = tmp_path / "labels.png"
    Image.fromarray(arr).save(path)
    with pytest.raises(ValueError, match=r"labels\.png holds 3 distinct values \(0, 1, 2\).*data\.mask_values"):
        decode_mask(path)
    assert np.array_equal(decode_mask(path, [2]), LESION)
    both = LESION.copy()
    both[0, 0] = True
    assert np.array_equal(decode_mask(path, [1, 2]), both)


def test_manifest_reads_a_0_1_mask_and_refuses_a_label_map_without_mask_values(tmp_path):
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(LESION.astype(np.uint8)).save(tmp_path / "a01.png")
    labels = LESION.astype(np.uint8) * 3
    labels[7, 7] = 1
    Image.fromarray(labels).save(tmp_path / "a3.png")
    (tmp_path / "m.csv").write_text("image,label,mask,split\na.png,1,a01.png,test\n")
    s = build_dataset("manifest", path=str(tmp_path / "m.csv"), size=8)[0]
    assert np.array_equal(s.lesion_mask.numpy(), LESION)  # the old /255 >= 0.5 made it empty
    (tmp_path / "m.csv").write_text("image,label,mask,split\na.png,1,a3.png,test\n")
    with pytest.raises(ValueError, match=r"a3\.png holds 3 distinct values"):
        build_dataset("manifest", path=str(tmp_path / "m.csv"), size=8)[0]
    s = build_dataset("manifest", path=str(tmp_path / "m.csv"), size=8, mask_values=[3])[0]
    assert np.array_equal(s.lesion_mask.numpy(), LESION)


# --- geometry ----------------------------------------------------------------------------------

@pytest.fixture
def wide(tmp_path):
    """A 20x40 (H x W) grey 128 image with a 4x4 white square at rows 6..9, cols 22..25, its mask
    marking the same square, in a manifest."""
    img = np.full((20, 40), 128, np.uint8)
    img[6:10, 22:26] = 255
    Image.fromarray(img).save(tmp_path / "w.png")
    Image.fromarray((img == 255).astype(np.uint8) * 255).save(tmp_path / "w_mask.png")
    (tmp_path / "m.csv").write_text("image,label,mask,split\nw.png,1,w_mask.png,test\n")
    return tmp_path / "m.csv"


def _where(t: torch.Tensor):
    rows, cols = np.nonzero(np.asarray(t))
    return (rows.min(), rows.max(), cols.min(), cols.max())


def test_pad_keeps_the_aspect_ratio_centred_on_black(wide):
    s = build_dataset("manifest", path=str(wide), size=40, resize="pad")[0]
    img = s.image[0]
    assert img.shape == (40, 40)
    assert (img[:10] == 0).all() and (img[30:] == 0).all()  # 10 rows of black above and below
    assert (img[16:20, 22:26] == 1).all() and torch.isclose(img[10, 0], torch.tensor(128 / 255))
    assert _where(img == 1) == (16, 19, 22, 25)  # rows shifted by the 10 padded rows
    assert _where(s.lesion_mask) == (16, 19, 22, 25) and int(s.lesion_mask.sum()) == 16
    half = build_dataset("manifest", path=str(wide), size=20, resize="pad")[0]
    assert _where(half.lesion_mask) == (8, 9, 11, 12) and int(half.lesion_mask.sum()) == 4
    assert s.metadata["original_size"] == [20, 40] and s.metadata["bit_depth"] == 8


def test_crop_takes_the_centred_square(wide):
    s = build_dataset("manifest", path=str(wide), size=20, resize="crop")[0]
    img = s.image[0]
    assert img.shape == (20, 20)
    assert _where(img == 1) == (6, 9, 12, 15)  # columns 10..29 kept: 22 -> 12
    assert _where(s.lesion_mask) == (6, 9, 12, 15) and int(s.lesion_mask.sum()) == 16
    assert (img[img != 1] == torch.tensor(128 / 255)).all()  # nothing padded


def test_squash_stretches_as_before(wide):
    s = build_dataset("manifest", path=str(wide), size=20, resize="squash")[0]
    assert _where(s.lesion_mask) == (6, 9, 11, 12)  # width halved: columns 22..25 -> 11..12
    img = np.full((20, 40), 128, np.float32) / 255
    img[6:10, 22:26] = 1
    want = F.interpolate(torch.from_numpy(img)[None, None], size=(20, 20), mode="bilinear", antialias=True,
                         align_corners=False)[0, 0].clamp(0, 1)
    assert torch.equal(s.image[0], want)


def test_unknown_resize_mode_is_refused(wide):
    with pytest.raises(ValueError, match=r"data.resize 'stretch' is not one of \['pad', 'crop', 'squash'\]"):
        build_dataset("manifest", path=str(wide), size=20, resize="stretch")
    with pytest.raises(ValueError, match="data.resize"):
        build_dataset("phantom", split="test", size=32, resize="stretch")


def test_sixteen_bit_file_metadata_through_the_manifest(tmp_path):
    Image.fromarray(np.full((6, 10), 32768, np.uint16)).save(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("image,label,split\na.png,0,test\n")
    s = build_dataset("manifest", path=str(tmp_path / "m.csv"), size=10, resize="pad")[0]
    assert s.metadata["bit_depth"] == 16 and s.metadata["original_size"] == [6, 10]
    assert torch.allclose(s.image[0, 2:8], torch.tensor(32768 / 65535))  # the old decode gave 1.0
    assert (s.image[0, :2] == 0).all() and (s.image[0, 8:] == 0).all()


# --- COVID-QU-Ex: the real 8-bit PNGs with 0/255 masks decode exactly as before ------------------

def _old_image(path, size):
    arr = np.asarray(Image.open(path).convert("L"), dtype=np.uint8)
    t = torch.from_numpy(np.array(arr, dtype=np.float32))[None, None] / 255.0
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t[0, 0].clamp(0, 1)


def _old_mask(path, size):
    arr = np.asarray(Image.open(path).convert("L"), dtype=np.uint8)
    t = torch.from_numpy(np.array(arr, dtype=np.float32))[None, None] / 255.0
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="area")
    return t[0, 0] >= 0.5


@pytest.mark.parametrize("size", [64, 256])
def test_covid_qu_ex_decodes_exactly_as_the_old_formula(covid_root, size):
    ds = build_dataset("covid_qu_ex", split="val", size=size, root=str(covid_root), classes=["COVID-19"])
    for i in (0, len(ds) // 2):
        cls, name = ds.items[i]
        folder = ds.root / cls
        s = ds[i]
        assert torch.equal(s.image[0], _old_image(folder / "images" / name, size))
        assert torch.equal(s.lesion_mask, _old_mask(folder / "infection masks" / name, size))
        assert torch.equal(s.lung_mask, _old_mask(folder / "lung masks" / name, size))
        assert s.lesion_mask.any() and s.metadata["bit_depth"] == 8 and s.metadata["original_size"] == [256, 256]
