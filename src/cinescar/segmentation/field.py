"""From an image's slices to the segmenter's field and back.

Forward: each slice is resampled to 1 x 1 mm (the same `resample_slice` the preprocessing uses), placed in a
`size` x `size` field centred on the image, and its intensities robustly scaled to [0, 1] -- the
preprocessing's own steps, except the centring, which cannot use a mask that does not exist yet. Backward: a
label field is cut out of the field at the same offset and resampled to the slice's own pixel grid with
nearest-neighbour interpolation, so the predicted mask shares its image's geometry exactly as the contract
requires of a manual mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from cinescar.preprocessing.images import normalise_intensity, place_in_field, resample_slice


@dataclass(frozen=True)
class FieldGeometry:
    """Where one stack's resampled slices sit in the field (one centre for the whole stack)."""

    shape: tuple[int, int]  # (rows, cols) of the original slices
    spacing_xy: tuple[float, float]
    resampled_shape: tuple[int, int]
    center_rc: tuple[float, float]
    size: int
    spacing_mm: float


def stack_to_field(stack: np.ndarray, spacing_xy: tuple[float, float], size: int = 256, spacing_mm: float = 1.0,
                   clip_percentiles: tuple[float, float] = (0.5, 99.5)) -> tuple[np.ndarray, FieldGeometry]:
    """Fields (slices, size, size) float32 in [0, 1] of a stack (slices, rows, cols), and their geometry."""
    stack = np.asarray(stack, dtype=np.float32)
    resampled = [resample_slice(s, spacing_xy, spacing_mm, sitk.sitkLinear) for s in stack]
    shape = resampled[0].shape
    center = (shape[0] / 2.0, shape[1] / 2.0)
    fields = [normalise_intensity(place_in_field(r, center, size, fill=float(r.min())), clip_percentiles)
              for r in resampled]
    geometry = FieldGeometry(tuple(stack.shape[1:]), (float(spacing_xy[0]), float(spacing_xy[1])), tuple(shape),
                             center, size, spacing_mm)
    return np.stack(fields), geometry


def labels_to_field(labels: np.ndarray, geometry: FieldGeometry) -> np.ndarray:
    """A label stack on the original grid, moved onto the field (nearest neighbour): training targets."""
    out = []
    for s in np.asarray(labels):
        r = resample_slice(s.astype(np.float32), geometry.spacing_xy, geometry.spacing_mm, sitk.sitkNearestNeighbor)
        out.append(place_in_field(np.rint(r).astype(np.uint8), geometry.center_rc, geometry.size))
    return np.stack(out)


def field_to_labels(fields: np.ndarray, geometry: FieldGeometry) -> np.ndarray:
    """Label fields (slices, size, size) back onto the original slices' grid (slices, rows, cols), uint8."""
    rows, cols = geometry.shape
    h, w = geometry.resampled_shape
    out = np.zeros((len(fields), rows, cols), np.uint8)
    # the inverse of place_in_field: the resampled slice's pixel (i, j) is the field's (i - r0, j - c0)
    r0 = int(round(geometry.center_rc[0])) - geometry.size // 2
    c0 = int(round(geometry.center_rc[1])) - geometry.size // 2
    for z, f in enumerate(fields):
        resampled = np.zeros((h, w), np.uint8)
        src_r = slice(max(-r0, 0), min(geometry.size, h - r0))
        src_c = slice(max(-c0, 0), min(geometry.size, w - c0))
        resampled[src_r.start + r0:src_r.stop + r0, src_c.start + c0:src_c.stop + c0] = f[src_r, src_c]
        img = sitk.GetImageFromArray(resampled)
        img.SetSpacing((geometry.spacing_mm, geometry.spacing_mm))
        ref = sitk.Image(cols, rows, sitk.sitkUInt8)
        ref.SetSpacing(geometry.spacing_xy)
        out[z] = sitk.GetArrayFromImage(sitk.Resample(img, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                      sitk.sitkUInt8))
    return out
