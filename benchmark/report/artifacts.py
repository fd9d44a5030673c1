"""What the runner stores for the report besides scores.csv, so every figure is redrawn from the run
folder alone (no data, models or maps needed):

- curves.csv       mean deletion/insertion curves: dataset, split, model, explainer, metric, step,
                   fraction, mean, sd, ci_low, ci_high, n
- curve_ends.csv   the first and last point of every per-image curve (the report's headroom check):
                   dataset, split, model, explainer, metric, image_id, start, end
- sanity.csv       randomisation curves: dataset, split, model, explainer, metric, stage, layer,
                   mean, sd, n
- sanity_images.csv the sanity verdict's inputs per image: dataset, split, model, explainer, metric,
                   image_id, last (similarity to the last cascade stage's map), null (similarity to
                   the same explainer's map of another image), degenerate_map, degenerate_last (1
                   where the trained model's / the last stage's map is constant or non-finite)
- predictions.csv  the classifier on the test split: dataset, split, model, image_id, label,
                   prob_pneumonia
- cases/<model>.npz the X-rays, expert masks and maps of each explainer's best, median and worst
                   image by a localisation metric, plus a shared set of lesion images (see write_cases)

Every file is written atomically and deterministically (fixed column order, sorted rows, fixed float
format), so rebuilding the report from it is byte-identical.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .stats import bootstrap_ci_columns
from ..store.files import atomic_path

CURVE_COLUMNS = ["dataset", "split", "model", "explainer", "metric", "step", "fraction", "mean", "sd",
                 "ci_low", "ci_high", "n"]
CURVE_END_COLUMNS = ["dataset", "split", "model", "explainer", "metric", "image_id", "start", "end"]
SANITY_COLUMNS = ["dataset", "split", "model", "explainer", "metric", "stage", "layer", "mean", "sd", "n"]
SANITY_IMAGE_COLUMNS = ["dataset", "split", "model", "explainer", "metric", "image_id", "last", "null",
                        "degenerate_map", "degenerate_last"]
# lesion_share: lesion area / lung area at the run's size, NaN where either mask is unknown (the
# report's focal-lesion table: share < 0.5, COVID-QU-Ex's "focal" subset)
PREDICTION_COLUMNS = ["dataset", "split", "model", "image_id", "label", "prob_pneumonia", "lesion_share"]
PICKS = ("best", "median", "worst")


def _finite_rows(curves: np.ndarray, what: str) -> np.ndarray:
    curves = np.asarray(curves, dtype=float)
    if curves.ndim != 2:
        raise ValueError(f"{what}: expected per-image curves of shape (N, S), got {curves.shape}")
    return curves[np.isfinite(curves).all(1)]


def summarise_curves(dataset: str, split: str, model: str, explainer: str, metric: str, curves: np.ndarray,
                     fraction: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95,
                     seed: int = 0) -> pd.DataFrame:
    """Rows of curves.csv for one (model, explainer, metric) from per-image curves (N, steps+1) and
    the fractions (steps+1,): mean, sd and bootstrap CI per step over the images with a finite curve."""
    fraction = np.asarray(fraction, dtype=float)
    ok = _finite_rows(curves, f"curves of {model}/{explainer}/{metric}")
    if ok.shape[1] != len(fraction):
        raise ValueError(f"curves of {model}/{explainer}/{metric}: {ok.shape[1]} steps but {len(fraction)} fractions")
    low, high = bootstrap_ci_columns(ok, n_resamples, confidence, seed)
    n = len(ok)
    return pd.DataFrame({"dataset": dataset, "split": split, "model": model, "explainer": explainer, "metric": metric,
                         "step": np.arange(len(fraction)), "fraction": fraction,
                         "mean": ok.mean(0) if n else np.nan, "sd": ok.std(0, ddof=1) if n > 1 else np.nan,
                         "ci_low": low, "ci_high": high, "n": n}, columns=CURVE_COLUMNS)


def summarise_sanity(dataset: str, split: str, model: str, explainer: str, metric: str, curves: np.ndarray,
                     layers: list[str]) -> pd.DataFrame:
    """Rows of sanity.csv from the (N, L) similarities of the cascading randomisation and the names of
    the L randomised stages (stage 0 = the first layer randomised, from the top). A NaN similarity (a
    constant map has no ranks) is left out of its stage only; n counts the finite values per stage."""
    curves = np.asarray(curves, dtype=float)
    if curves.ndim != 2 or curves.shape[1] != len(layers):
        raise ValueError(f"sanity curves of {model}/{explainer}/{metric}: shape {curves.shape} does not match "
                         f"{len(layers)} layer names")
    finite = np.isfinite(curves)
    n = finite.sum(0)
    total = np.where(finite, curves, 0.0).sum(0)
    mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    sq = np.where(finite, (curves - mean) ** 2, 0.0).sum(0)
    sd = np.where(n > 1, np.sqrt(sq / np.maximum(n - 1, 1)), np.nan)
    return pd.DataFrame({"dataset": dataset, "split": split, "model": model, "explainer": explainer, "metric": metric,
                         "stage": np.arange(len(layers)), "layer": list(layers), "mean": mean, "sd": sd, "n": n},
                        columns=SANITY_COLUMNS)


def sanity_image_rows(dataset: str, split: str, model: str, explainer: str, metric: str, image_ids: list[str],
                      curve: np.ndarray, null: np.ndarray, degenerate: np.ndarray) -> pd.DataFrame:
    """Rows of sanity_images.csv for one (model, explainer, metric) from what a randomisation metric
    hands back (metrics/sanity.py): the (N, L) curve (its last column is the last stage), the (N,) or
    (N, 1) null similarity and the (N, 2) degenerate flags (trained model's map, last stage's map)."""
    curve, null = np.asarray(curve, dtype=float), np.asarray(null, dtype=float).reshape(-1)
    degenerate = np.asarray(degenerate, dtype=float).reshape(len(null), -1)
    if not (curve.ndim == 2 and len(curve) == len(null) == len(degenerate) == len(image_ids)) or degenerate.shape[1] != 2:
        raise ValueError(f"sanity values of {model}/{explainer}/{metric}: {len(image_ids)} ids, curve {curve.shape}, "
                         f"null {null.shape}, degenerate {degenerate.shape}")
    return pd.DataFrame({"dataset": dataset, "split": split, "model": model, "explainer": explainer, "metric": metric,
                         "image_id": list(map(str, image_ids)), "last": curve[:, -1], "null": null,
                         "degenerate_map": (degenerate[:, 0] > 0).astype(int),
                         "degenerate_last": (degenerate[:, 1] > 0).astype(int)}, columns=SANITY_IMAGE_COLUMNS)


def write_sanity_images(path: Path, frames: list[pd.DataFrame]) -> None:
    """Write sanity_images.csv from sanity_image_rows frames; without frames the file is removed (an
    earlier run's values would describe another config)."""
    if not frames:
        Path(path).unlink(missing_ok=True)
        return
    _write(path, frames, SANITY_IMAGE_COLUMNS, ["dataset", "model", "explainer", "metric", "image_id"])


def load_sanity_images(path: Path) -> pd.DataFrame | None:
    """sanity_images.csv, None when the run folder has none (no randomisation metric ran, or a run
    made before it existed)."""
    path = Path(path)
    if not path.exists():
        return None
    df = pd.read_csv(path, dtype={"image_id": str})
    missing = set(SANITY_IMAGE_COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}")
    return df


def predictions_frame(dataset: str, split: str, model: str, image_ids: list[str], labels: np.ndarray,
                      prob_pneumonia: np.ndarray, lesion_share: np.ndarray | None = None) -> pd.DataFrame:
    """Rows of predictions.csv for one model."""
    labels, prob = np.asarray(labels).astype(int), np.asarray(prob_pneumonia, dtype=float)
    share = np.full(len(prob), np.nan) if lesion_share is None else np.asarray(lesion_share, dtype=float)
    if not (len(image_ids) == len(labels) == len(prob) == len(share)):
        raise ValueError(f"predictions of {model}: {len(image_ids)} ids, {len(labels)} labels, {len(prob)} probabilities, "
                         f"{len(share)} lesion shares")
    return pd.DataFrame({"dataset": dataset, "split": split, "model": model, "image_id": list(map(str, image_ids)),
                         "label": labels, "prob_pneumonia": prob, "lesion_share": share}, columns=PREDICTION_COLUMNS)


def lesion_share(lesion_masks, has_mask, lung_masks) -> np.ndarray:
    """Per image: lesion pixels / lung pixels; NaN where the lesion mask is unknown or no lung is drawn."""
    lesion = lesion_masks.flatten(1).sum(1).double().cpu().numpy()
    lung = lung_masks.flatten(1).sum(1).double().cpu().numpy()
    known = has_mask.cpu().numpy().astype(bool) & (lung > 0)
    return np.where(known, lesion / np.where(lung > 0, lung, 1.0), np.nan)


def _write(path: Path, frames: list[pd.DataFrame], columns: list[str], keys: list[str]) -> None:
    df = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    df = df.sort_values(keys, kind="stable")
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n")


def write_curves(path: Path, frames: list[pd.DataFrame]) -> None:
    """Write curves.csv from summarise_curves frames."""
    _write(path, frames, CURVE_COLUMNS, ["dataset", "model", "explainer", "metric", "step"])


def curve_ends_frame(dataset: str, split: str, model: str, explainer: str, metric: str, image_ids: list[str],
                     curves: np.ndarray) -> pd.DataFrame:
    """Rows of curve_ends.csv for one (model, explainer, metric): each image's first and last curve point."""
    curves = np.asarray(curves, dtype=float)
    if curves.ndim != 2 or len(curves) != len(image_ids):
        raise ValueError(f"curves of {model}/{explainer}/{metric}: shape {curves.shape} for {len(image_ids)} images")
    return pd.DataFrame({"dataset": dataset, "split": split, "model": model, "explainer": explainer, "metric": metric,
                         "image_id": list(map(str, image_ids)), "start": curves[:, 0], "end": curves[:, -1]},
                        columns=CURVE_END_COLUMNS)


def write_curve_ends(path: Path, frames: list[pd.DataFrame]) -> None:
    """Write curve_ends.csv from curve_ends_frame frames."""
    _write(path, frames, CURVE_END_COLUMNS, ["dataset", "model", "explainer", "metric", "image_id"])


def load_curve_ends(path: Path) -> pd.DataFrame | None:
    """curve_ends.csv, or None where the run folder has none (a run before it, or no curve metric)."""
    path = Path(path)
    if not path.exists():
        return None
    ends = pd.read_csv(path, dtype={"image_id": str})
    return None if ends.empty else ends


def write_sanity(path: Path, frames: list[pd.DataFrame]) -> None:
    """Write sanity.csv from summarise_sanity frames."""
    _write(path, frames, SANITY_COLUMNS, ["dataset", "model", "explainer", "metric", "stage"])


def write_predictions(path: Path, frames: list[pd.DataFrame]) -> None:
    """Write predictions.csv from predictions_frame frames."""
    _write(path, frames, PREDICTION_COLUMNS, ["dataset", "model", "image_id"])


def pick_cases(values: pd.Series) -> list[tuple[str, str, float]]:
    """(label, image id, value) of the best, median and worst finite value (higher = better here);
    ties broken by image id so the choice is reproducible."""
    v = values.dropna()
    if v.empty:
        return []
    order = pd.DataFrame({"image_id": v.index.astype(str), "value": v.to_numpy(dtype=float)})
    order = order.sort_values(["value", "image_id"], kind="stable")
    ids, vals = order["image_id"].tolist(), order["value"].tolist()
    idx = (len(ids) - 1, (len(ids) - 1) // 2, 0)
    return [(label, ids[i], float(vals[i])) for label, i in zip(PICKS, idx)]


def write_cases(path: Path, images: np.ndarray, masks: np.ndarray, image_ids: list[str],
                maps: dict[str, np.ndarray], signed: dict[str, bool], scores: pd.DataFrame, model: str,
                case_metric: str | None, overlay_images: int = 4) -> None:
    """Store what the overlay figures of one model need, so they are redrawn without data or models.

    images (N,H,W) in [0,1] and masks (N,H,W) bool of the test split in `image_ids` order; maps
    {explainer: (N,H,W)}; `scores` the long table. Per explainer it keeps its best, median and worst
    image by `case_metric` (direction from the registry) and, for the shared grid, the first
    `overlay_images` images with a lesion. The npz holds: images, masks, ids (M images used), explainers,
    signed, case_metric, pick_index (E,3) into images (-1 none), pick_value (E,3), pick_maps (E,3,H,W),
    overlay_index (K,), overlay_maps (E,K,H,W)."""
    from ..metrics import get_metric
    images, masks = np.asarray(images, dtype=np.float32), np.asarray(masks, dtype=bool)
    if images.ndim != 3 or images.shape != masks.shape or len(image_ids) != len(images):
        raise ValueError(f"write_cases: images {images.shape}, masks {masks.shape} and {len(image_ids)} ids must agree (N,H,W)")
    names = sorted(maps)
    for e in names:
        if maps[e].shape != images.shape:
            raise ValueError(f"write_cases: maps of {e!r} have shape {maps[e].shape}, images {images.shape}")
    index = {str(i): k for k, i in enumerate(image_ids)}
    lesion = [k for k in range(len(images)) if masks[k].any()][:overlay_images]
    picks = np.full((len(names), 3), -1)
    values = np.full((len(names), 3), np.nan)
    if case_metric:
        sign = 1.0 if get_metric(case_metric).higher_is_better else -1.0
        sel = scores[(scores.model == model) & (scores.metric == case_metric)]
        for i, e in enumerate(names):
            s = sel[sel.explainer == e].set_index("image_id")["value"].astype(float) * sign
            for j, (_, image_id, v) in enumerate(pick_cases(s)):
                picks[i, j], values[i, j] = index[image_id], v * sign
    used = sorted(set(lesion) | set(picks[picks >= 0].tolist()))
    remap = {k: n for n, k in enumerate(used)}
    h, w = images.shape[1:]
    pick_maps = np.zeros((len(names), 3, h, w), np.float32)
    for i, e in enumerate(names):
        for j in range(3):
            if picks[i, j] >= 0:
                pick_maps[i, j] = maps[e][picks[i, j]]
    overlay_maps = np.stack([maps[e][lesion] for e in names]).astype(np.float32) if names else np.zeros((0, 0, h, w))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, images=images[used], masks=masks[used], ids=np.asarray([str(image_ids[k]) for k in used]),
                                explainers=np.asarray(names), signed=np.asarray([bool(signed[e]) for e in names]),
                                case_metric=np.asarray(case_metric or ""),
                                pick_index=np.vectorize(lambda k: remap.get(k, -1))(picks) if picks.size else picks,
                                pick_value=values, pick_maps=pick_maps,
                                overlay_index=np.asarray([remap[k] for k in lesion], dtype=int), overlay_maps=overlay_maps)


def read_cases(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a cases npz (no pickles allowed)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_curves(path: Path, dataset: str, split: str) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(deletion/insertion curves, sanity curves) from curves.csv (and sanity.csv beside it). Accepts
    the runner's interim format too (an `x` column for the fraction or the layer name, sanity rows
    mixed in, no split or CI columns: the CI is then the normal one, 1.96 sd / sqrt n)."""
    from ..metrics import get_metric
    path = Path(path)
    curves = pd.read_csv(path, dtype={"x": str, "layer": str}) if path.exists() else None
    sanity = pd.read_csv(path.with_name("sanity.csv"), dtype={"layer": str}) if path.with_name("sanity.csv").exists() else None
    if curves is not None and "x" in curves.columns:
        curves = curves.assign(dataset=curves.get("dataset", dataset), split=curves.get("split", split))
        is_sanity = curves["metric"].map(lambda m: get_metric(m).category == "sanity")
        extra = curves[is_sanity].rename(columns={"step": "stage", "x": "layer"})
        if len(extra):
            sanity = pd.concat([sanity, extra[SANITY_COLUMNS]]) if sanity is not None else extra[SANITY_COLUMNS]
        curves = curves[~is_sanity].rename(columns={"x": "fraction"})
        curves["fraction"] = curves["fraction"].astype(float)
        half = 1.96 * curves["sd"] / np.sqrt(curves["n"].clip(lower=1))
        curves = curves.assign(ci_low=curves["mean"] - half, ci_high=curves["mean"] + half)[CURVE_COLUMNS]
    curves = None if curves is None or curves.empty else curves
    sanity = None if sanity is None or sanity.empty else sanity
    return curves, sanity


def load_predictions(path: Path, dataset: str, split: str) -> pd.DataFrame | None:
    """predictions.csv, with dataset and split filled in when the file lacks them."""
    path = Path(path)
    if not path.exists():
        return None
    df = pd.read_csv(path, dtype={"image_id": str})
    if df.empty:
        return None
    for col, value in (("dataset", dataset), ("split", split), ("lesion_share", np.nan)):  # older runs lack them
        if col not in df.columns:
            df[col] = value
    return df[PREDICTION_COLUMNS]
