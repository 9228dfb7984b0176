"""Find the short-axis cine stack among an exam's frames and arrange it as a (phase, slice) grid.

Why by hand rather than highdicom's `get_volume_from_series`: that function builds one 3D volume from one
series and refuses mixed phases, while a cine is a 4D grid spread over one or many series (one per slice
or breath-hold) or one multi-frame file. The rules, all from the headers:

- frames are grouped by geometry (frame of reference, orientation within `ORIENTATION_TOLERANCE`, matrix,
  pixel spacing); a *cine stack* is a group with several slice positions and several images per position;
- slice position = ImagePositionPatient projected on the plane normal (row cosine x column cosine), never
  SliceLocation (optional and vendor-defined);
- phases at each position are ordered by TriggerTime (or, only when the caller gives the phases explicitly,
  by temporal position / instance number).

Everything ambiguous is a `CohortError` naming the patient and a file: two stacks (choose with `--series`),
geometry differing inside the stack, missing slices or irregular gaps, unequal phase counts, missing trigger
times, repeated images. A repeated acquisition of a whole position (another series, or a later acquisition
in the same series) keeps the latest, with a warning listing what was left out.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from cinescar.dicom.headers import FrameHeader
from cinescar.errors import CohortError

log = logging.getLogger(__name__)

ORIENTATION_TOLERANCE = 1e-3
"""Largest difference of a direction cosine within one stack (scanners write 5-6 decimals)."""
SPACING_TOLERANCE = 1e-3
"""Relative pixel-spacing difference within one stack."""
PARALLEL_DEGREES = 10.0
"""Planes closer than this to the stack's are taken as meant to be part of it (a tilted slice is an error);
planes further off are other views (long axis, localizer-like) and are skipped with a warning."""
POSITION_TOLERANCE_MM = 0.05
"""Two frames whose positions along the normal differ by less than this are at the same slice."""
GAP_TOLERANCE = 0.02
"""Relative difference from the median slice gap beyond which the stack is irregular."""
IN_PLANE_TOLERANCE = 0.25
"""Largest in-plane shift between slices, in pixels: slices must overlie each other to form one volume."""


@dataclass
class StackGrid:
    """The chosen stack's frames as [phase][slice], slices in increasing position along `normal`."""

    frames: list[list[FrameHeader]]
    positions_mm: list[float]
    row: np.ndarray
    col: np.ndarray
    normal: np.ndarray
    origin: np.ndarray
    spacing: tuple[float, float, float]  # (x = between columns, y = between rows, z = slice gap)
    rows: int
    cols: int
    trigger_times_ms: np.ndarray  # (phases, slices), NaN where absent
    ordered_by: str  # "TriggerTime" or "instance order"
    warnings: list[str] = field(default_factory=list)

    @property
    def n_phases(self) -> int:
        return len(self.frames)

    @property
    def n_slices(self) -> int:
        return len(self.positions_mm)


# ------------------------------------------------------------------------------------------------- groups
@dataclass
class _Group:
    first: FrameHeader
    frames: list[FrameHeader] = field(default_factory=list)

    @property
    def normal(self) -> np.ndarray:
        return _normal(self.first)

    def positions(self) -> list[float]:
        return _cluster([float(np.dot(f.position, self.normal)) for f in self.frames])

    def series(self) -> set[str]:
        return {f.series_instance_uid for f in self.frames}

    def describe(self) -> str:
        names = sorted({(f.series_number if f.series_number is not None else -1, f.series_description)
                        for f in self.frames})
        return "; ".join(f"series {n if n >= 0 else '?'} {d!r}" if d else f"series {n if n >= 0 else '?'}"
                         for n, d in names)


def _normal(f: FrameHeader) -> np.ndarray:
    n = np.cross(f.orientation[:3], f.orientation[3:])
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else n


def trigger_times_per_position(frames: Sequence[FrameHeader], decimals: int = 1) -> int:
    """The largest number of distinct trigger times at one slice position (position on the plane normal,
    rounded to `decimals` mm): 1 for a single-phase series, the phase count for a cine.

    Why: SimpleITK's series reader stacks a cine's phases as extra slices without an error; the contract's
    DICOM-folder path asks this first (`cinescar.cohort.contract.read_volume`)."""
    times: dict[tuple, set[float]] = defaultdict(set)
    for f in frames:
        if f.trigger_time is not None:
            key = (f.frame_of_reference_uid, round(float(np.dot(f.position, _normal(f))), decimals))
            times[key].add(round(float(f.trigger_time), 3))
    return max((len(v) for v in times.values()), default=0)


def _cluster(values: Iterable[float]) -> list[float]:
    """Distinct values, those within POSITION_TOLERANCE_MM of the previous one merged (sorted, mean)."""
    out: list[list[float]] = []
    for v in sorted(values):
        if out and v - out[-1][-1] < POSITION_TOLERANCE_MM:
            out[-1].append(v)
        else:
            out.append([v])
    return [float(np.mean(c)) for c in out]


def _difference(a: FrameHeader, b: FrameHeader) -> str | None:
    """How b's geometry differs from a's (None when they can share a stack)."""
    if a.frame_of_reference_uid != b.frame_of_reference_uid:
        return "frame of reference"
    if (a.rows, a.cols) != (b.rows, b.cols):
        return f"matrix {b.rows}x{b.cols} (the stack's is {a.rows}x{a.cols})"
    if np.max(np.abs(np.subtract(a.orientation, b.orientation))) > ORIENTATION_TOLERANCE:
        return (f"orientation {tuple(round(v, 4) for v in b.orientation)} (the stack's is "
                f"{tuple(round(v, 4) for v in a.orientation)})")
    if np.max(np.abs(np.subtract(a.spacing, b.spacing)) / np.maximum(a.spacing, 1e-6)) > SPACING_TOLERANCE:
        return f"pixel spacing {b.spacing} mm (the stack's is {a.spacing} mm)"
    return None


def group_frames(frames: Sequence[FrameHeader]) -> list[_Group]:
    groups: list[_Group] = []
    for f in frames:
        for g in groups:
            if _difference(g.first, f) is None:
                g.frames.append(f)
                break
        else:
            groups.append(_Group(f, [f]))
    return groups


def _is_cine(g: _Group) -> bool:
    n_positions = len(g.positions())
    return n_positions >= 2 and len(g.frames) > n_positions


def _angle(a: _Group, b: _Group) -> float:
    c = abs(float(np.dot(a.normal, b.normal)))
    return float(np.degrees(np.arccos(min(1.0, c))))


def _near(stack: _Group, other: _Group) -> bool:
    """Whether `other` lies among the stack's slices: nearly parallel and within its extent (plus a gap)."""
    if stack.first.frame_of_reference_uid != other.first.frame_of_reference_uid:
        return False
    if _angle(stack, other) > PARALLEL_DEGREES:
        return False
    pos = stack.positions()
    gap = float(np.median(np.diff(pos))) if len(pos) > 1 else 10.0
    other_pos = [float(np.dot(f.position, stack.normal)) for f in other.frames]
    return min(other_pos) <= pos[-1] + 1.5 * gap and max(other_pos) >= pos[0] - 1.5 * gap


def _shares_position(a: _Group, b: _Group) -> bool:
    pa = a.positions()
    return any(min(abs(p - q) for q in pa) < POSITION_TOLERANCE_MM * 20 for p in b.positions())


def choose_stack(frames: Sequence[FrameHeader], patient_id: str, folder: str, series: Sequence[int] | None
                 ) -> tuple[list[FrameHeader], list[str]]:
    """The frames of the one short-axis cine stack, and warnings about the frames left out."""
    warnings: list[str] = []
    if series:
        wanted = {int(s) for s in series}
        available = sorted({f.series_number for f in frames if f.series_number is not None})
        frames = [f for f in frames if f.series_number in wanted]
        if not frames:
            raise CohortError(f"no MR image of series {', '.join(map(str, sorted(wanted)))}; the folder holds "
                              f"series {', '.join(map(str, available)) or 'none'}", patient_id, folder)
    if not frames:
        raise CohortError("folder holds no MR image (see the warnings for the files skipped)", patient_id, folder)
    groups = group_frames(frames)
    cines = sorted((g for g in groups if _is_cine(g)), key=lambda g: -len(g.frames))
    if not cines:
        views = "; ".join(f"{g.describe()}: {len(g.positions())} position(s), {len(g.frames)} image(s)"
                          for g in groups)
        raise CohortError(f"no short-axis cine stack (several slice positions with several phases each) among "
                          f"the MR images ({views})", patient_id, folder)
    stack = cines[0]
    for other in cines[1:]:
        if (other.series() & stack.series()) or (_near(stack, other) and not _shares_position(stack, other)):
            _refuse_misfit(stack, other, patient_id)
        listed = " | ".join(g.describe() for g in cines)
        raise CohortError(f"folder holds {len(cines)} short-axis cine stacks ({listed}); choose one with --series N "
                          "(its series number(s))", patient_id, folder)
    for other in groups:
        if other is stack:
            continue
        if (other.series() & stack.series()) or _near(stack, other):
            _refuse_misfit(stack, other, patient_id)
        names = sorted({f.label for f in other.frames})
        warnings.append(f"skipped {len(names)} image(s) of another view ({other.describe()}, "
                        f"{_angle(stack, other):.0f} degrees off the short-axis stack): {', '.join(names)}")
    return stack.frames, warnings


def _refuse_misfit(stack: _Group, other: _Group, patient_id: str) -> None:
    f = other.frames[0]
    what = _difference(stack.first, f) or "geometry"
    raise CohortError(f"{len(other.frames)} image(s) in the short-axis stack differ in {what}; a stack must share "
                      "one orientation, matrix and pixel spacing (first such image shown)", patient_id, f.label)


# --------------------------------------------------------------------------------------------------- grid
def _latest(runs: dict[object, list[FrameHeader]]) -> object:
    """Key of the latest acquisition: by acquisition date/time, then series number, then acquisition number."""
    def stamp(key: object) -> tuple:
        fs = runs[key]
        return (max(f.acquisition for f in fs), max((f.series_number or 0) for f in fs),
                max((f.acquisition_number or 0) for f in fs))
    return max(runs, key=stamp)


def _phase_key(f: FrameHeader, by_trigger: bool) -> float:
    return f.trigger_time if by_trigger else float(f.order)  # type: ignore[return-value]


def _resolve_repeats(at: list[FrameHeader], position: float, by_trigger: bool, patient_id: str
                     ) -> tuple[list[FrameHeader], str | None]:
    """One acquisition of one slice position: a repeat (another series, or acquisition) keeps the latest."""
    warning = None
    by_series: dict[object, list[FrameHeader]] = defaultdict(list)
    for f in at:
        by_series[f.series_instance_uid].append(f)
    runs = by_series
    if len(by_series) == 1:
        keys = [_phase_key(f, by_trigger) for f in at]
        if len(set(keys)) == len(keys):
            return at, None
        runs = defaultdict(list)
        for f in at:  # repeated within one series: tell the acquisitions apart by number or time
            runs[(f.acquisition_number, f.acquisition)].append(f)
    if len(runs) > 1:
        keep = _latest(runs)
        left = sorted(f.label for k, fs in runs.items() if k != keep for f in fs)
        kept = runs[keep][0]
        warning = (f"slice at {position:.2f} mm was acquired {len(runs)} times; kept the latest (series "
                   f"{kept.series_number}, acquisition {kept.acquisition or '?'}), left out {len(left)} "
                   f"image(s): {', '.join(left)}")
        at = runs[keep]
    keys = [_phase_key(f, by_trigger) for f in at]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        files = sorted(f.label for f in at if _phase_key(f, by_trigger) == dup)
        what = f"trigger time {dup:g} ms" if by_trigger else f"instance order {dup:g}"
        raise CohortError(f"{len(files)} images at slice position {position:.2f} mm share {what} and cannot be "
                          f"told apart as acquisitions: {', '.join(files)}", patient_id, files[0])
    return at, warning


def build_grid(frames: Sequence[FrameHeader], patient_id: str, folder: str, *, require_trigger: bool = True
               ) -> StackGrid:
    """Arrange one stack's frames as [phase][slice] and check it is a regular, complete 4D grid."""
    first = frames[0]
    row, col = np.array(first.orientation[:3]), np.array(first.orientation[3:])
    normal = _normal(first)
    missing = [f for f in frames if f.trigger_time is None]
    by_trigger = not missing
    if missing and require_trigger:
        raise CohortError(f"{len(missing)} of {len(frames)} images have no TriggerTime (nor a nominal cardiac "
                          "trigger delay), so the phases cannot be ordered in time; give the phases explicitly "
                          "(--phases ed=I,es=J, phases counted in instance order)", patient_id, missing[0].label)
    warnings: list[str] = []

    positions = _cluster(float(np.dot(f.position, normal)) for f in frames)
    slots: list[list[FrameHeader]] = [[] for _ in positions]
    for f in frames:
        d = float(np.dot(f.position, normal))
        slots[int(np.argmin([abs(d - p) for p in positions]))].append(f)

    resolved = []
    for p, at in zip(positions, slots):
        kept, warning = _resolve_repeats(at, p, by_trigger, patient_id)
        if warning:
            warnings.append(warning)
        resolved.append(sorted(kept, key=lambda f: _phase_key(f, by_trigger)))

    _check_gaps(positions, resolved, patient_id)
    _check_in_plane(resolved, normal, first, patient_id)
    counts = [len(r) for r in resolved]
    n_phases = max(set(counts), key=counts.count)
    for i, r in enumerate(resolved):
        if len(r) != n_phases:
            raise CohortError(f"slice {i} (at {positions[i]:.2f} mm) holds {len(r)} phases, the other slices "
                              f"{n_phases} (phase counts per slice: {counts}); arrhythmia rejection or a missing "
                              "image? Every slice needs the same phases", patient_id, r[0].label)
    declared = {f.cardiac_images for r in resolved for f in r if f.cardiac_images}
    if len(declared) == 1 and next(iter(declared)) != n_phases:
        raise CohortError(f"every slice holds {n_phases} phases but CardiacNumberOfImages says "
                          f"{next(iter(declared))}: phases are missing", patient_id, resolved[0][0].label)
    grid = [[resolved[s][p] for s in range(len(positions))] for p in range(n_phases)]
    times = np.array([[f.trigger_time if f.trigger_time is not None else np.nan for f in ph] for ph in grid])
    gap = float(np.median(np.diff(positions))) if len(positions) > 1 else float(first.spacing[0])
    origin = np.array(resolved[0][0].position, dtype=float)
    for w in warnings:
        log.warning("patient %s: %s", patient_id, w)
    return StackGrid(frames=grid, positions_mm=positions, row=row, col=col, normal=normal, origin=origin,
                     spacing=(float(first.spacing[1]), float(first.spacing[0]), gap), rows=first.rows,
                     cols=first.cols, trigger_times_ms=times,
                     ordered_by="TriggerTime" if by_trigger else "instance order", warnings=warnings)


def _check_gaps(positions: list[float], resolved: list[list[FrameHeader]], patient_id: str) -> None:
    """Equal gaps between neighbouring slices: a missing slice (a gap twice the others) or an irregular one
    would otherwise be stacked at the wrong depth."""
    if len(positions) < 2:
        raise CohortError("the stack has a single slice position", patient_id, resolved[0][0].label)
    gaps = np.diff(positions)
    median = float(np.median(gaps))
    for i, g in enumerate(gaps):
        if abs(g - median) > GAP_TOLERANCE * median + 1e-3:
            ratio = g / median
            kind = (f"a missing slice ({ratio:.1f} x the usual gap)" if abs(ratio - round(ratio)) < 0.1
                    and round(ratio) >= 2 else "an irregular gap")
            raise CohortError(f"slices {i} and {i + 1} (at {positions[i]:.2f} and {positions[i + 1]:.2f} mm) are "
                              f"{g:.2f} mm apart where the stack's gap is {median:.2f} mm: {kind}", patient_id,
                              resolved[i + 1][0].label)


def _check_in_plane(resolved: list[list[FrameHeader]], normal: np.ndarray, first: FrameHeader,
                    patient_id: str) -> None:
    ref = np.array(resolved[0][0].position)
    limit = IN_PLANE_TOLERANCE * min(first.spacing)
    for r in resolved:
        for f in r:
            d = np.array(f.position) - ref
            shift = float(np.linalg.norm(d - np.dot(d, normal) * normal))
            if shift > limit:
                raise CohortError(f"image is shifted {shift:.2f} mm in-plane from the stack's first slice; slices "
                                  "must overlie each other to form one volume", patient_id, f.label)
