"""DICOM pixel data to grey float [0,1] along the display pipeline of PS3.3 C.11 (pydicom >= 3).

1. Modality LUT: the Modality LUT Sequence, or RescaleSlope/RescaleIntercept (pydicom's
   `apply_modality_lut`); stored values pass unchanged when the file has neither.
2. VOI: the VOI LUT Sequence when present (preferred, as pydicom's `apply_voi_lut` does), else the
   first WindowCenter/WindowWidth (`apply_windowing`, VOILUTFunction LINEAR, LINEAR_EXACT or SIGMOID).
3. The VOI output range is mapped linearly to [0,1]: for a window, pydicom's output range (the stored
   bit range, BitsStored and PixelRepresentation, through the modality LUT); for a VOI LUT, 0..2**bits-1
   of its LUTDescriptor. Without a VOI LUT or window, the stored bit range through the modality LUT
   is mapped (never the image's own min..max: BitsStored is required for pixel data, so the file
   always says its range, and a dark image stays dark).
4. MONOCHROME1 (minimum is white) is inverted: 1 - x.

Refused, naming the file: multi-frame files (NumberOfFrames > 1), colour files (anything but
MONOCHROME1/2), and pixel data pydicom cannot decode (compressed syntaxes without a handler).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


def _modality_range(ds) -> tuple[float, float]:
    """The modality LUT output of the lowest and the highest stored value, as pydicom's windowing
    computes it (so a windowed image spans exactly this range)."""
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    if int(ds.get("PixelRepresentation", 0)) == 0:
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = lo * slope + intercept, hi * slope + intercept
    return lo, hi


def decode_dicom(path: Path) -> tuple[np.ndarray, int]:
    """(float32 (H,W) in [0,1], BitsStored) of one single-frame greyscale DICOM file."""
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing
    except ImportError:
        raise ImportError(f"reading {path} needs pydicom >= 3: pip install 'pydicom>=3'") from None
    try:
        ds = pydicom.dcmread(path)
    except Exception as err:  # pydicom raises many types on a damaged file
        raise ValueError(f"cannot read DICOM {path}: {err}") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ValueError(f"DICOM {path} has {frames} frames (NumberOfFrames); only single-frame images are "
                         f"read: export the frame you mean as its own file")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in MONOCHROME:
        raise ValueError(f"DICOM {path} has PhotometricInterpretation {photometric!r}; allowed: {list(MONOCHROME)}")
    if "BitsStored" not in ds:
        raise ValueError(f"DICOM {path} lacks BitsStored (0028,0101), which says the range of its values")
    try:
        stored = ds.pixel_array
    except Exception as err:
        raise ValueError(f"cannot decode the pixel data of DICOM {path}: {err}") from None
    if stored.ndim != 2:
        raise ValueError(f"DICOM {path} pixel data has shape {stored.shape}; expected one grey frame (rows, columns)")
    values = apply_modality_lut(stored, ds)
    lo, hi = _modality_range(ds)
    windowed = True
    try:
        if ds.get("VOILUTSequence"):
            if not np.issubdtype(values.dtype, np.integer):  # a rescale gives floats; the LUT indexes integers
                values = np.rint(values).astype(np.int64)
            values = apply_voi(values, ds, 0)
            lo, hi = 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
        elif "WindowCenter" in ds and "WindowWidth" in ds:
            values = apply_windowing(values, ds, 0)  # output spans (lo, hi), as _modality_range gives
        else:
            windowed = False
    except (ValueError, NotImplementedError, AttributeError) as err:
        raise ValueError(f"DICOM {path}: cannot apply its VOI LUT / window: {err}") from None
    if hi == lo:
        raise ValueError(f"DICOM {path}: its value range is empty ({lo}..{hi}); check BitsStored and the LUTs")
    if not windowed and hi < lo:
        lo, hi = hi, lo  # a negative slope without a window: brighter is the higher modality value
    x = (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)
    x = np.clip(x, 0.0, 1.0)  # only values outside BitsStored (a broken file) reach beyond the range
    if photometric == "MONOCHROME1":
        x = 1.0 - x
    return x.astype(np.float32), int(ds.BitsStored)
