"""Is this a short-axis cine exam at all? Checks shared by `cinescar validate` and `cinescar screen`.

The cohort contract's structural checks (file readable, mask binary and non-empty, geometry equal) let
through input that is structurally fine but cannot be a cine exam: a mask of all ones, a stack whose slice
axis was swapped into the image plane, a 2D image where a stack belongs, the same file given as ED and ES, a
colour image, a header that would make resampling allocate gigabytes. The models would still produce a
confident probability for such input, so each of these is refused here.

Two levels, and why:
- an **error** where no real exam looks so (the limits below are far outside what any scanner writes for a
  short-axis cine stack): validation fails, screening refuses;
- a **warning** where a real but unusual exam could (an unusually tight field of view, few slices, fine or
  coarse pixels): validation lists it, screening puts it in its result's `warnings` and still reports every
  probability unchanged -- a warning never lowers or hides a number silently.

Limits are module constants, each with its reason, so that a site with unusual but genuine exams can see
exactly what refused them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MYOCARDIUM_FRACTION_ERROR = 0.6
"""Largest share of a slice the myocardium can cover. It is a ring around the blood pool: even a field of
view cropped tightly to its outline holds at most ~60 % myocardium (ring of wall = radius/2: 0.75 * pi/4).
A mask of all ones, or one with the background labelled 1, is far above."""
MYOCARDIUM_FRACTION_WARN = 0.3
"""Median share of the slice above which the field of view is unusually tight around the heart (a cine field of
view of 300-400 mm holds ~1-3 % myocardium); preprocessing centres a 256 mm field, so little context is left."""
MYOCARDIUM_FRACTION_LOW_WARN = 0.0005
"""Median share below which the contour is a speck (0.05 % of a 350 mm field is ~60 mm^2): probably a wrong
label value or a contour of another structure."""
MIN_MYOCARDIUM_SLICES = 3
"""A short-axis stack crosses the left ventricle in 8-12 slices at 8-10 mm; fewer than 3 with myocardium is a
2D image or a single slice, not a stack."""
WARN_MYOCARDIUM_SLICES = 6
"""Fewer slices than the paper's development selection (6 mid-ventricular slices of LGE- patients)."""
MAX_SLICES = 64
"""No short-axis cine stack has more slices (typical 8-20); more means a swapped axis or a 3D acquisition."""
WARN_SLICES = 30
IN_PLANE_SPACING_ERROR_MM = (0.1, 6.0)
"""Pixel spacing no cine scanner writes (typical 1.0-2.0 mm); outside, the header's spacing is wrong or the axes
are swapped."""
IN_PLANE_SPACING_WARN_MM = (0.5, 3.0)
MAX_RESAMPLED_SIDE = 2048
"""Largest side of a slice resampled to the preprocessing pixel size (2 m at 1 mm): checked from the header
before any pixel buffer is allocated."""


@dataclass
class Findings:
    """Errors (refuse) and warnings (report) of one check, as plain messages; the caller names patient and file."""

    errors: list[tuple[str, str]] = field(default_factory=list)  # (message, file column or "")
    warnings: list[str] = field(default_factory=list)

    def error(self, message: str, where: str = "") -> None:
        self.errors.append((message, where))

    def extend(self, other: "Findings") -> None:
        self.errors += other.errors
        self.warnings += other.warnings


def check_pixels(phase: str, dimension: int, components: int, where: str) -> Findings:
    """Scalar pixels and a 3D stack: a colour (RGB) file or a 2D image is not a short-axis stack."""
    out = Findings()
    if components != 1:
        out.error(f"{phase}: pixels have {components} components (colour or vector image); a cine stack has "
                  "scalar (grey-level) pixels", where)
    if dimension < 3:
        out.error(f"{phase}: a {dimension}D image where a short-axis stack (3D: x, y, slice) belongs", where)
    return out


def check_spacing(phase: str, spacing: tuple[float, ...], n_slices: int, where: str) -> Findings:
    """In-plane spacing in a plausible range, and the slice axis the coarsest (else the axes are swapped)."""
    out = Findings()
    sx, sy = float(spacing[0]), float(spacing[1])
    lo, hi = IN_PLANE_SPACING_ERROR_MM
    wlo, whi = IN_PLANE_SPACING_WARN_MM
    for axis, s in (("x", sx), ("y", sy)):
        if not math.isfinite(s) or not lo <= s <= hi:
            out.error(f"{phase}: in-plane pixel spacing {axis} = {s:.4g} mm is outside {lo}-{hi} mm, which no cine "
                      "scanner writes: the header's spacing is wrong or the axes are swapped", where)
        elif not wlo <= s <= whi:
            out.warnings.append(f"{phase}: in-plane pixel spacing {axis} = {s:.4g} mm is unusual for cine MRI "
                                f"(expected {wlo}-{whi} mm)")
    if len(spacing) >= 3 and n_slices > 1:
        sz = float(spacing[2])
        if not math.isfinite(sz) or sz <= max(sx, sy):
            out.error(f"{phase}: slice spacing {sz:.4g} mm is not coarser than the in-plane spacing "
                      f"({sx:.4g} x {sy:.4g} mm); a short-axis stack has 5-10 mm between slices and 1-2 mm pixels: "
                      "the slice axis is probably swapped with an image axis, or the header holds no spacing",
                      where)
    if n_slices > MAX_SLICES:
        out.error(f"{phase}: {n_slices} slices; a short-axis cine stack has at most {MAX_SLICES} (typically 8-20): "
                  "a swapped axis or not a short-axis stack", where)
    elif n_slices > WARN_SLICES:
        out.warnings.append(f"{phase}: {n_slices} slices is unusually many for a short-axis cine stack")
    return out


def check_resampled_size(phase: str, size_xy: tuple[int, int], spacing_xy: tuple[float, float], target_mm: float,
                         where: str) -> Findings:  # fmt: skip
    """The size a slice takes at the preprocessing pixel size, from the header alone (before allocating)."""
    out = Findings()
    sides = [n * s / target_mm for n, s in zip(size_xy, spacing_xy)]
    if any(not math.isfinite(v) or v > MAX_RESAMPLED_SIDE for v in sides):
        out.error(f"{phase}: resampled to {target_mm:g} mm a slice would be {sides[0]:.0f} x {sides[1]:.0f} pixels "
                  f"(limit {MAX_RESAMPLED_SIDE}); the header's size or spacing is implausible", where)
    return out


def check_myocardium(phase: str, mask: np.ndarray, where: str) -> Findings:
    """Myocardium share of each slice within reason, and enough slices holding myocardium."""
    out = Findings()
    mask = np.asarray(mask)
    per_slice = mask.reshape(mask.shape[0], -1).astype(bool)
    fraction = per_slice.mean(axis=1)
    with_myo = fraction > 0
    n_myo = int(with_myo.sum())
    if n_myo == 0:
        return out  # an empty mask is reported by the contract checks
    worst = int(np.argmax(fraction))
    if fraction[worst] > MYOCARDIUM_FRACTION_ERROR:
        out.error(f"{phase}: the mask covers {fraction[worst]:.0%} of slice {worst}; a myocardium ring covers at most "
                  f"~{MYOCARDIUM_FRACTION_ERROR:.0%} even of a field cropped to the heart: the mask is not a "
                  "myocardium contour (all ones, or background labelled 1?)", where)
        return out
    median = float(np.median(fraction[with_myo]))
    if median > MYOCARDIUM_FRACTION_WARN:
        out.warnings.append(f"{phase}: the myocardium covers {median:.0%} of a slice (median); the field of view is "
                            "unusually tight around the heart")
    elif median < MYOCARDIUM_FRACTION_LOW_WARN:
        out.warnings.append(f"{phase}: the myocardium covers only {median:.3%} of a slice (median); is the mask a "
                            "myocardium contour?")
    if n_myo < MIN_MYOCARDIUM_SLICES:
        out.error(f"{phase}: only {n_myo} slice(s) hold myocardium; a short-axis stack crosses the left ventricle "
                  f"in 8-12 slices (at least {MIN_MYOCARDIUM_SLICES} needed)", where)
    elif n_myo < WARN_MYOCARDIUM_SLICES:
        out.warnings.append(f"{phase}: only {n_myo} slices hold myocardium (a short-axis stack usually has 8-12)")
    return out


def check_distinct_files(files: dict[str, Path]) -> Findings:
    """ED and ES are two different cardiac phases: the same file cannot be both."""
    out = Findings()
    for ed, es, what in (("ed_image", "es_image", "image"), ("ed_mask", "es_mask", "mask")):
        if ed in files and es in files and _same_file(files[ed], files[es]):
            out.error(f"the same file is given as the ED and the ES {what}; they are two different cardiac phases",
                      es)
    return out


def check_distinct_pixels(ed: np.ndarray, es: np.ndarray) -> Findings:
    """Two files with identical pixels are one phase copied, not ED and ES."""
    out = Findings()
    if ed.shape == es.shape and np.array_equal(ed, es):
        out.error("the ED and ES images hold identical pixels; they are two different cardiac phases", "es_image")
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve() or Path(a).samefile(b)
    except OSError:
        return False


NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img", ".img.gz")


def nonfinite_in_raw_file(path: Path) -> bool | None:
    """True when a NIfTI/Analyze file stores NaN or infinite voxels, None when the file is not one.

    SimpleITK's NIfTI reader silently turns NaN and Inf into 0, so the finiteness check on the array it returns
    never fires for `.nii`/`.nii.gz`; nibabel reads the stored values as they are.
    """
    if path.is_dir() or not path.name.lower().endswith(NIFTI_SUFFIXES):
        return None
    import nibabel as nib

    try:
        img = nib.load(str(path))
        dtype = np.dtype(img.header.get_data_dtype())
        if dtype.kind not in "fc":
            return False  # integer voxels cannot be NaN or infinite
        return not bool(np.all(np.isfinite(np.asarray(img.dataobj.get_unscaled()))))
    except Exception:  # noqa: BLE001 - SimpleITK read it; nibabel's opinion on an odd header is not an input error
        return None
