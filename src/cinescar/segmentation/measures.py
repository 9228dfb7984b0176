"""What a segmentation is worth: overlap (Dice, 95 % Hausdorff), LV volumes, mass, maximal wall thickness, and
the agreement of predicted with manual values (Bland-Altman bias and 95 % limits of agreement).

Everything is measured on the 1 x 1 mm field stacks (slice spacing from the image), so predicted and manual
masks are compared on the same grid. Dice and HD95 use MONAI's metrics.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cinescar.segmentation.labels import CLASSES, LV_CAVITY, MYOCARDIAL_DENSITY_G_PER_ML, MYOCARDIUM


def overlap(pred: np.ndarray, ref: np.ndarray, slice_mm: float, pixel_mm: float = 1.0) -> dict[str, float]:
    """Dice and HD95 (mm) per class of one stack (slices, rows, cols); NaN where a class is absent in both."""
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance

    out: dict[str, float] = {}
    for name, lab in CLASSES.items():
        p, r = pred == lab, ref == lab
        if not p.any() and not r.any():
            out[f"dice_{name}"] = out[f"hd95_{name}"] = float("nan")
            continue
        pt = torch.from_numpy(p[None, None].astype(np.float32))
        rt = torch.from_numpy(r[None, None].astype(np.float32))
        out[f"dice_{name}"] = float(compute_dice(pt, rt, include_background=True)[0, 0])
        if p.any() and r.any():
            hd = compute_hausdorff_distance(pt, rt, include_background=True, percentile=95,
                                            spacing=[float(slice_mm), pixel_mm, pixel_mm])
            out[f"hd95_{name}"] = float(hd[0, 0])
        else:
            out[f"hd95_{name}"] = float("nan")
    return out


def lv_volume_ml(labels: np.ndarray, slice_mm: float, pixel_mm: float = 1.0) -> float:
    """LV cavity volume (ml) of a stack alone: what the end-systole curve needs once per phase, without the
    wall thickness's distance transforms (a quarter of the curve's time)."""
    return float((labels == LV_CAVITY).sum()) * (pixel_mm * pixel_mm * float(slice_mm) / 1000.0)


def volumes(labels: np.ndarray, slice_mm: float, pixel_mm: float = 1.0) -> dict[str, float]:
    """LV cavity volume (ml), myocardial volume (ml), LV mass (g) and maximal wall thickness (mm) of a stack."""
    voxel_ml = pixel_mm * pixel_mm * float(slice_mm) / 1000.0
    myo = labels == MYOCARDIUM
    mwt = 0.0
    for s in myo:
        if s.any():
            mwt = max(mwt, 2.0 * float(ndimage.distance_transform_edt(s).max()) * pixel_mm)
    myo_ml = float(myo.sum()) * voxel_ml
    return {"lv_volume_ml": lv_volume_ml(labels, slice_mm, pixel_mm), "myocardium_ml": myo_ml,
            "lv_mass_g": myo_ml * MYOCARDIAL_DENSITY_G_PER_ML, "mwt_mm": mwt}


def ejection_fraction(edv: float, esv: float) -> float:
    return float(100.0 * (edv - esv) / edv) if edv > 0 else float("nan")


def agreement(predicted: np.ndarray, manual: np.ndarray) -> dict[str, float]:
    """Bland-Altman: mean difference (predicted - manual), 95 % limits of agreement, median |difference|, n."""
    d = np.asarray(predicted, float) - np.asarray(manual, float)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return {"n": 0, "bias": float("nan"), "loa_low": float("nan"), "loa_high": float("nan"),
                "median_abs_diff": float("nan")}
    sd = float(d.std(ddof=1)) if len(d) > 1 else float("nan")
    return {"n": int(len(d)), "bias": float(d.mean()), "loa_low": float(d.mean() - 1.96 * sd),
            "loa_high": float(d.mean() + 1.96 * sd), "median_abs_diff": float(np.median(np.abs(d)))}


def icc_3_1(a: np.ndarray, b: np.ndarray) -> float:
    """ICC(3,1), two-way mixed, consistency, single measurement (Shrout & Fleiss), of paired ratings a, b.

    Written here (ten lines) because no chosen dependency has it (pingouin is not one).
    """
    x = np.column_stack([np.asarray(a, float), np.asarray(b, float)])
    x = x[np.isfinite(x).all(axis=1)]
    n, k = x.shape
    if n < 3:
        return float("nan")
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    ms_rows, ms_err = ss_rows / (n - 1), ss_err / ((n - 1) * (k - 1))
    denom = ms_rows + (k - 1) * ms_err
    return float((ms_rows - ms_err) / denom) if denom > 0 else float("nan")
