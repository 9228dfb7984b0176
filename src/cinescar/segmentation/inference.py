"""Segmenting stacks with one network or the mean of several (the cross-fitted ensemble), and handing the
result back in the image's own geometry.

Post-processing keeps the largest 3D connected piece of heart (myocardium + cavity): a bright vessel or
the RV wall far from the LV is not the LV. What remains is checked by `qc`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from cinescar.segmentation.field import FieldGeometry, field_to_labels, stack_to_field
from cinescar.segmentation.labels import BACKGROUND, LV_CAVITY, MYOCARDIUM
from cinescar.segmentation.measures import lv_volume_ml
from cinescar.segmentation.network import build_network, field_multiple


@dataclass(frozen=True)
class FieldSettings:
    """How images become fields: the preprocessing's spacing, field side and intensity percentiles."""

    size: int = 256
    spacing_mm: float = 1.0
    clip_percentiles: tuple[float, float] = (0.5, 99.5)

    @classmethod
    def from_preprocessing(cls, pre: dict) -> "FieldSettings":
        return cls(int(pre["size"]), float(pre["spacing_mm"]), tuple(float(v) for v in pre["clip_percentiles"]))


@dataclass
class StackSegmentation:
    labels: np.ndarray  # field labels (slices, size, size) uint8
    confidence: np.ndarray  # highest class probability per field pixel
    geometry: FieldGeometry
    slice_mm: float

    def on_image_grid(self) -> np.ndarray:
        """Labels on the original slices' grid (slices, rows, cols)."""
        return field_to_labels(self.labels, self.geometry)


def largest_heart_component(labels: np.ndarray) -> np.ndarray:
    fg = labels != BACKGROUND
    pieces, n = ndimage.label(fg)
    if n <= 1:
        return labels
    keep = np.argmax(np.bincount(pieces.ravel())[1:]) + 1
    out = labels.copy()
    out[(pieces != keep) & fg] = BACKGROUND
    return out


class Segmenter:
    """One or more networks (state_dict + params) applied as the mean of their softmax probabilities."""

    def __init__(self, networks: list[tuple[dict, dict]], settings: FieldSettings, threads: int = 1):
        import torch

        if not networks:
            raise ValueError("a segmenter needs at least one network")
        self.settings = settings
        self.threads = int(threads)
        self.nets = []
        for params, state in networks:
            if settings.size % field_multiple(params):
                raise ValueError(f"field side {settings.size} is not a multiple of {field_multiple(params)}")
            net = build_network(params)
            net.load_state_dict(state)
            net.eval()
            self.nets.append(net)
        self._torch = torch

    def probabilities(self, fields: np.ndarray, batch: int = 16) -> np.ndarray:
        from cinescar.segmentation.train import predict_probabilities

        self._torch.set_num_threads(self.threads)
        return np.mean([predict_probabilities(net, fields, batch) for net in self.nets], axis=0)

    def segment_fields(self, fields: np.ndarray, geometry: FieldGeometry, slice_mm: float) -> StackSegmentation:
        probs = self.probabilities(fields)
        labels = largest_heart_component(probs.argmax(1).astype(np.uint8))
        return StackSegmentation(labels, probs.max(1), geometry, float(slice_mm))

    def segment_stack(self, stack: np.ndarray, spacing: tuple[float, float, float]) -> StackSegmentation:
        s = self.settings
        fields, geometry = stack_to_field(stack, spacing[:2], s.size, s.spacing_mm, s.clip_percentiles)
        return self.segment_fields(fields, geometry, spacing[2] if len(spacing) > 2 else 1.0)

    def segment_image(self, image: sitk.Image) -> tuple[sitk.Image, StackSegmentation]:
        """The myocardium mask (1, uint8) in the image's own geometry -- the cohort contract's mask -- and the
        full segmentation (cavity, confidence) for volumes and QC."""
        from cinescar.cohort.contract import as_stack

        arr, spacing = as_stack(image)
        seg = self.segment_stack(arr.astype(np.float32), spacing)
        grid = seg.on_image_grid()
        myo = (grid == MYOCARDIUM).astype(np.uint8)
        if image.GetDimension() == 2:
            myo = myo[0]
        mask = sitk.GetImageFromArray(myo)
        mask.CopyInformation(image)
        return mask, seg

    def lv_volume_ml(self, image: sitk.Image) -> float:
        """The LV cavity volume of one phase's stack (or sub-stack): what end-systole picking minimises."""
        from cinescar.cohort.contract import as_stack

        arr, spacing = as_stack(image)
        seg = self.segment_stack(arr.astype(np.float32), spacing)
        return lv_volume_ml(seg.labels, seg.slice_mm, self.settings.spacing_mm)


def cavity_pixels(labels: np.ndarray) -> int:
    return int((labels == LV_CAVITY).sum())
