"""A picture of a cohort: a few patients' ED and ES mid slices with myocardium contour and scar outline.

Reading the synthetic scar truth (`truth/{pid}_{phase}_scar.nii.gz`) here is fine: this is a figure for
people, never an input to a model. For a cohort without truth files (a real one), only contours are drawn.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cinescar.cohort.contract import as_stack, parse_scar_slices, read_manifest, read_volume, resolve  # noqa: E402
from cinescar.errors import CohortError  # noqa: E402


def _pick_patients(manifest, n: int) -> list[int]:
    """Alternate LGE+ / LGE- and prefer distinct centres, external first, so the grid shows the range."""
    order, seen_centres = [], set()
    rank = sorted(range(len(manifest)), key=lambda i: (manifest.cohort.iloc[i] != "external", i))
    pos = [i for i in rank if int(manifest.lge.iloc[i]) == 1]
    neg = [i for i in rank if int(manifest.lge.iloc[i]) == 0]
    queues = [pos, neg]
    for round_ in range(2):  # first pass: new centres only; second: anything left
        for turn in range(len(manifest)):
            if len(order) >= n:
                return order
            q = queues[turn % 2]
            for i in q:
                centre = manifest.center.iloc[i]
                if i not in order and (round_ == 1 or centre not in seen_centres):
                    order.append(i)
                    seen_centres.add(centre)
                    break
    return order[:n]


def _mid_slice(mask: np.ndarray, scar_slices: list[int] | None) -> int:
    """The scar slice nearest the middle for LGE+, else the middle of the slices holding myocardium."""
    with_myo = [i for i in range(mask.shape[0]) if mask[i].any()]
    if not with_myo:
        return mask.shape[0] // 2
    mid = with_myo[len(with_myo) // 2]
    if scar_slices:
        return min(scar_slices, key=lambda s: abs(s - mid))
    return mid


def _zoom_box(mask: np.ndarray, spacing: float, half_mm: float = 55.0) -> tuple[slice, slice]:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return slice(None), slice(None)
    cy, cx, h = int(ys.mean()), int(xs.mean()), int(half_mm / spacing)
    return (slice(max(cy - h, 0), min(cy + h, mask.shape[0])), slice(max(cx - h, 0), min(cx + h, mask.shape[1])))


def render_cohort_figure(cohort_dir: Path, out_png: Path, n_patients: int = 3) -> Path:
    """Write a PNG grid (one row per patient: ED full field of view, ED zoom, ES zoom) and return its path.

    Yellow: myocardium mask contour; red: synthetic scar outline (scar fraction >= 50 %), when available.
    """
    cohort_dir, out_png = Path(cohort_dir), Path(out_png)
    manifest = read_manifest(cohort_dir)
    if len(manifest) == 0:
        raise CohortError("manifest has no patients", path=cohort_dir / "manifest.csv")
    rows = _pick_patients(manifest, max(1, n_patients))
    fig, axes = plt.subplots(len(rows), 3, figsize=(10.5, 3.5 * len(rows)), squeeze=False)
    for r, i in enumerate(rows):
        rec = manifest.iloc[i]
        pid = str(rec.patient_id)
        scar_slices = parse_scar_slices(rec.get("scar_slices"), pid, cohort_dir / "manifest.csv")
        stacks = {}
        for phase in ("ED", "ES"):
            img, spacing = as_stack(read_volume(resolve(cohort_dir, rec[f"{phase.lower()}_image"]), pid))
            msk, _ = as_stack(read_volume(resolve(cohort_dir, rec[f"{phase.lower()}_mask"]), pid))
            truth_path = cohort_dir / "truth" / f"{pid}_{phase}_scar.nii.gz"
            scar = as_stack(read_volume(truth_path, pid))[0] if truth_path.exists() else None
            stacks[phase] = (img, msk, scar, spacing)
        s = _mid_slice(stacks["ED"][1], scar_slices)
        panels = [("ED", False), ("ED", True), ("ES", True)]
        for c, (phase, zoom) in enumerate(panels):
            img, msk, scar, spacing = stacks[phase]
            s_ = min(s, img.shape[0] - 1)
            box = _zoom_box(msk[s_], spacing[0]) if zoom else (slice(None), slice(None))
            ax = axes[r, c]
            im = img[s_][box].astype(float)
            lo, hi = np.percentile(im, [0.5, 99.5])
            ax.imshow(im, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            if msk[s_].any():
                ax.contour(msk[s_][box].astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
            if scar is not None and (scar[s_] >= 50).any():
                ax.contour((scar[s_][box] >= 50).astype(float), levels=[0.5], colors="red", linewidths=0.9)
            label = "LGE+" if int(rec.lge) == 1 else "LGE-"
            title = f"{pid} {label} {phase} slice {s_}" + (" (zoom)" if zoom else "")
            if c == 0:
                title = f"{pid} {label} | {rec.center} ({rec.vendor}, {rec.cohort})\n{phase} slice {s_}, full FOV"
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
    fig.suptitle("Synthetic cohort: yellow = myocardium mask, red = synthetic scar (>= 50 % fraction)", fontsize=9)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
