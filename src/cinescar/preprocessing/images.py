"""Per-image preprocessing as in the paper: 1 x 1 mm pixels, a fixed 256 x 256 field, intensities in [0, 1].

Each short-axis slice is treated as its own 2D image (the paper analyses slices, and slice thickness
8-10 mm makes through-plane resampling meaningless). The field of view is centred on the myocardium
(default) rather than on the image centre, so that the CNN's 128 x 128 centre crop holds the heart
whatever the scanner's field of view; `preprocessing.center_on: image` restores the paper's behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from cinescar.errors import CinescarError


@dataclass
class PreprocessSettings:
    spacing_mm: float = 1.0
    size: int = 256
    clip_percentiles: tuple[float, float] = (0.5, 99.5)
    center_on: str = "mask"

    @classmethod
    def from_config(cls, cfg: dict) -> "PreprocessSettings":
        p = cfg.get("preprocessing", {})
        return cls(spacing_mm=float(p.get("spacing_mm", 1.0)), size=int(p.get("size", 256)),
                   clip_percentiles=tuple(p.get("clip_percentiles", (0.5, 99.5))),
                   center_on=str(p.get("center_on", "mask")))


def resample_slice(arr: np.ndarray, spacing_xy: tuple[float, float], target: float,
                   interpolator: int) -> np.ndarray:
    """Resample one 2D slice (rows, cols) to `target` mm pixels with SimpleITK."""
    from cinescar.cohort.plausibility import MAX_RESAMPLED_SIDE

    size = (arr.shape[1], arr.shape[0])
    sides = [n * float(s) / target for n, s in zip(size, spacing_xy)]
    if not all(np.isfinite(v) and v <= MAX_RESAMPLED_SIDE for v in sides):
        # checked before SimpleITK allocates the output (a wrong header could ask for gigabytes)
        raise CinescarError(f"a {size[0]} x {size[1]} slice at {spacing_xy[0]:g} x {spacing_xy[1]:g} mm would be "
                            f"resampled to {sides[0]:.0f} x {sides[1]:.0f} pixels (limit {MAX_RESAMPLED_SIDE}); "
                            "the image header's spacing is implausible")
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing((float(spacing_xy[0]), float(spacing_xy[1])))
    new_size = [max(1, int(round(v))) for v in sides]
    out = sitk.Resample(img, new_size, sitk.Transform(), interpolator, img.GetOrigin(), (target, target),
                        img.GetDirection(), 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def place_in_field(arr: np.ndarray, center_rc: tuple[float, float], size: int, fill: float = 0.0) -> np.ndarray:
    """Crop/pad `arr` to size x size with `center_rc` (row, col) at the middle."""
    out = np.full((size, size), fill, dtype=arr.dtype)
    r0 = int(round(center_rc[0])) - size // 2
    c0 = int(round(center_rc[1])) - size // 2
    src_r = slice(max(r0, 0), min(r0 + size, arr.shape[0]))
    src_c = slice(max(c0, 0), min(c0 + size, arr.shape[1]))
    dst_r = slice(src_r.start - r0, src_r.stop - r0)
    dst_c = slice(src_c.start - c0, src_c.stop - c0)
    out[dst_r, dst_c] = arr[src_r, src_c]
    return out


def normalise_intensity(arr: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Robust min-max to [0, 1]: percentiles rather than extremes, so one hot pixel cannot squash contrast."""
    lo, hi = np.percentile(arr, percentiles)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def preprocess_stack(image: np.ndarray, mask: np.ndarray, spacing_xy: tuple[float, float],
                     settings: PreprocessSettings) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Preprocess a stack (slices, rows, cols). Returns images, masks and the indices of the kept slices.

    Slices whose mask holds no myocardium after resampling (beyond base or apex) are not images and are
    left out; the caller counts them.
    """
    imgs, msks, kept = [], [], []
    resampled = []
    for z in range(image.shape[0]):
        im = resample_slice(image[z], spacing_xy, settings.spacing_mm, sitk.sitkLinear)
        mk = resample_slice(mask[z], spacing_xy, settings.spacing_mm, sitk.sitkNearestNeighbor) > 0.5
        resampled.append((im, mk))
    # one centre for the whole stack keeps the slices aligned with each other
    all_mask = [np.argwhere(mk) for _, mk in resampled if mk.any()]
    ref_shape = resampled[0][0].shape
    if settings.center_on == "mask" and all_mask:
        center = tuple(np.concatenate(all_mask).mean(axis=0))
    else:
        center = (ref_shape[0] / 2.0, ref_shape[1] / 2.0)
    for z, (im, mk) in enumerate(resampled):
        if not mk.any():
            continue
        im_f = place_in_field(im, center, settings.size, fill=float(im.min()))
        mk_f = place_in_field(mk.astype(np.uint8), center, settings.size)
        if not mk_f.any():
            continue
        imgs.append(normalise_intensity(im_f, settings.clip_percentiles))
        msks.append(mk_f)
        kept.append(z)
    if not imgs:
        return np.zeros((0, settings.size, settings.size), np.float32), np.zeros((0, settings.size, settings.size),
                                                                                 np.uint8), []
    return np.stack(imgs), np.stack(msks), kept


def crop_center(arr: np.ndarray, size: int = 128) -> np.ndarray:
    """Centre crop of the last two axes (the paper's 128 x 128 CNN input)."""
    h, w = arr.shape[-2:]
    r0, c0 = (h - size) // 2, (w - size) // 2
    return arr[..., r0:r0 + size, c0:c0 + size]
