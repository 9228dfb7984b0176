"""Synthetic cine MR exams written with pydicom, for the DICOM reader tests.

A short-axis "heart" is a bright LV cavity disc inside a grey myocardial ring whose cavity radius follows a
contraction curve over the phases (largest at phase 0, smallest at `ES_PHASE`), on an oblique plane like a
real short-axis stack. The pixels are known exactly, so a reader must give them back bit for bit. Layouts:
one classic series holding every (slice, phase), one classic series per slice, and one enhanced multi-frame
file (highdicom's legacy conversion, which puts the trigger time in the unassigned per-frame sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

SIZE = 64
N_SLICES = 6
N_PHASES = 8
ES_PHASE = 3
PIXEL_SPACING = (1.5, 1.25)  # DICOM order: (row spacing = y, column spacing = x)
SLICE_GAP = 8.0
CAVITY, MYO, BACKGROUND = 800, 300, 100
ROW = np.array([0.8, 0.6, 0.0])
COL = np.array([0.36, -0.48, -0.8])  # orthonormal to ROW; normal = ROW x COL
ORIGIN = np.array([-40.0, -60.0, 30.0])
RESCALE = (2.0, -50.0)  # slope, intercept applied to stored values

# Identifiers that must never reach logs or error messages.
PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "MRN-0042-SECRET"


def cavity_radius(phase: int, n_phases: int = N_PHASES, es: int = ES_PHASE) -> float:
    """Cavity radius (pixels): 14 at phase 0, 8 at `es`, back to ~14 at the end of the cycle."""
    if phase <= es:
        frac = phase / es
    else:
        frac = 1.0 - (phase - es) / (n_phases - es)
    return 14.0 - 6.0 * frac


def frame_pixels(phase: int, slice_index: int, n_phases: int = N_PHASES, es: int = ES_PHASE) -> np.ndarray:
    """Stored (pre-rescale) uint16 pixels of one frame; a slice-dependent stripe makes every slice unique."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    r = np.hypot(yy - SIZE / 2 + 2, xx - SIZE / 2 - 1)
    rad = cavity_radius(phase, n_phases, es)
    img = np.full((SIZE, SIZE), BACKGROUND, np.uint16)
    img[(r >= rad) & (r < rad + 5)] = MYO
    img[r < rad] = CAVITY
    img[slice_index, :] = 10 + slice_index + 16 * phase  # a marker row: which slice and phase this is
    return img


def normal() -> np.ndarray:
    return np.cross(ROW, COL)


def position(slice_index: int, gap: float = SLICE_GAP) -> np.ndarray:
    return ORIGIN + slice_index * gap * normal()


@dataclass
class Exam:
    """What a synthetic exam holds, to compare the reader's result against."""

    folder: Path
    n_slices: int
    n_phases: int
    es: int
    trigger_times: list[float]
    files: list[Path] = field(default_factory=list)

    def expected(self) -> np.ndarray:
        """(phases, slices, rows, cols) float32 after rescale, slices in increasing position along the normal."""
        out = np.zeros((self.n_phases, self.n_slices, SIZE, SIZE), np.float32)
        for p in range(self.n_phases):
            for s in range(self.n_slices):
                out[p, s] = frame_pixels(p, s, self.n_phases, self.es) * RESCALE[0] + RESCALE[1]
        return out


def mr_dataset(pixels: np.ndarray, *, study_uid: str, series_uid: str, for_uid: str, series_number: int,
               instance_number: int, ipp: np.ndarray, trigger_time: float | None, n_phases: int,
               iop: tuple[np.ndarray, np.ndarray] = (ROW, COL), spacing: tuple[float, float] = PIXEL_SPACING,
               acquisition_time: str = "101010.000000", description: str = "cine_sax",
               image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "NONE")) -> Dataset:
    """One classic MR Image Storage instance with the tags a scanner's cine carries."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "MR"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = "20240102"
    ds.StudyTime = "101000"
    ds.StudyID = "1"
    ds.AccessionNumber = "ACC42"
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "SynthVendor"
    ds.ImageType = list(image_type)
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [float(v) for v in ipp]
    ds.ImageOrientationPatient = [float(v) for v in (*iop[0], *iop[1])]
    ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
    ds.SliceThickness = 8.0
    if trigger_time is not None:
        ds.TriggerTime = trigger_time
    ds.CardiacNumberOfImages = n_phases
    ds.AcquisitionTime = acquisition_time
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = "SS"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    ds.EchoTime = 1.2
    ds.RepetitionTime = 3.0
    ds.EchoTrainLength = 1
    ds.MagneticFieldStrength = 1.5
    ds.BodyPartExamined = "HEART"
    ds.PatientPosition = "HFS"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = RESCALE[0]
    ds.RescaleIntercept = RESCALE[1]
    ds.RescaleType = "US"
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    return ds


def trigger_times(n_phases: int, rr_ms: float = 800.0) -> list[float]:
    return [round(p * rr_ms / n_phases, 1) for p in range(n_phases)]


def build_datasets(n_slices: int = N_SLICES, n_phases: int = N_PHASES, es: int = ES_PHASE,
                   series_per_slice: bool = False, seed: int = 0) -> list[tuple[int, int, Dataset]]:
    """(phase, slice, dataset) for every frame; instance numbers are shuffled (vendor order is arbitrary)."""
    rng = np.random.default_rng(seed)
    study_uid, for_uid = generate_uid(), generate_uid()
    series = [generate_uid() for _ in range(n_slices)] if series_per_slice else [generate_uid()] * n_slices
    times = trigger_times(n_phases)
    order = rng.permutation(n_slices * n_phases)
    out = []
    for s in range(n_slices):
        for p in range(n_phases):
            k = s * n_phases + p
            ds = mr_dataset(frame_pixels(p, s, n_phases, es), study_uid=study_uid, series_uid=series[s],
                            for_uid=for_uid, series_number=(10 + s) if series_per_slice else 10,
                            instance_number=int(order[k]) + 1, ipp=position(s),
                            trigger_time=times[p] + (0.3 * s if series_per_slice else 0.0), n_phases=n_phases,
                            description=f"CINE_segmented_SAX_b{s + 1}" if series_per_slice else "cine_sax")
            out.append((p, s, ds))
    return out


def write_classic(folder: Path, datasets: list[tuple[int, int, Dataset]] | None = None, nested: bool = False,
                  **kwargs) -> Exam:
    """Write one file per frame, named by a random-looking counter (file names carry no order)."""
    datasets = build_datasets(**kwargs) if datasets is None else datasets
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (p, s, ds) in enumerate(datasets):
        sub = folder / f"series{int(ds.SeriesNumber)}" if nested else folder
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"IM{(i * 7919) % 100003:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    n_slices = 1 + max(s for _, s, _ in datasets)
    n_phases = 1 + max(p for p, _, _ in datasets)
    es = kwargs.get("es", ES_PHASE)
    return Exam(folder, n_slices, n_phases, es, trigger_times(n_phases), files)


def write_enhanced(folder: Path, n_slices: int = N_SLICES, n_phases: int = N_PHASES, es: int = ES_PHASE) -> Exam:
    """One enhanced (legacy-converted) multi-frame MR file holding every frame."""
    import highdicom as hd

    legacy = [ds for _, _, ds in build_datasets(n_slices, n_phases, es)]
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(legacy, series_instance_uid=generate_uid(),
                                                        series_number=20, sop_instance_uid=generate_uid(),
                                                        instance_number=1)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "enhanced.dcm"
    enhanced.save_as(path, enforce_file_format=True)
    return Exam(folder, n_slices, n_phases, es, trigger_times(n_phases), [path])


def toy_lv_volume_ml(image) -> float:
    """LV cavity volume of a synthetic stack: the pixels at the cavity's (rescaled) value, times voxel size."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(image)
    sx, sy, sz = image.GetSpacing()
    return float((arr == CAVITY * RESCALE[0] + RESCALE[1]).sum() * sx * sy * sz / 1000.0)


def toy_segmenter(image):
    """Labels of a synthetic stack: 1 myocardium, 2 LV cavity (exact, from the known intensities)."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(image)
    out = np.zeros(arr.shape, np.uint8)
    out[arr == MYO * RESCALE[0] + RESCALE[1]] = 1
    out[arr == CAVITY * RESCALE[0] + RESCALE[1]] = 2
    labels = sitk.GetImageFromArray(out)
    labels.CopyInformation(image)
    return labels


LAYOUTS = ("one_series", "series_per_slice", "enhanced")


def write_cine_from_images(folder: Path, phase_images: list, layout: str = "one_series") -> Path:
    """Every (slice, phase) of `phase_images` (SimpleITK 3D images of one geometry, non-negative integer pixels,
    stored as they are: slope 1, intercept 0) as a DICOM cine, so a reader must give them back. `layout`: one
    classic series (one file per image), one classic series per slice (a subfolder each, trigger times
    0.3 ms apart per slice as breath-holds are), or one enhanced multi-frame file (highdicom's legacy
    conversion)."""
    import SimpleITK as sitk

    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {LAYOUTS}")
    ref = phase_images[0]
    direction = np.array(ref.GetDirection()).reshape(3, 3)
    sx, sy, sz = ref.GetSpacing()
    study_uid, series_uid, for_uid = generate_uid(), generate_uid(), generate_uid()
    n_slices = ref.GetSize()[2]
    per_slice = [generate_uid() for _ in range(n_slices)]
    times = trigger_times(len(phase_images))
    folder.mkdir(parents=True, exist_ok=True)
    datasets = []
    for p, image in enumerate(phase_images):
        arr = sitk.GetArrayFromImage(image)
        if arr.min() < 0 or not np.array_equal(arr, np.round(arr)):
            raise ValueError("pixels must be non-negative integers (stored as uint16 exactly)")
        for s in range(arr.shape[0]):
            ipp = np.array(ref.GetOrigin()) + s * sz * direction[:, 2]
            split = layout == "series_per_slice"
            ds = mr_dataset(arr[s], study_uid=study_uid, series_uid=per_slice[s] if split else series_uid,
                            for_uid=for_uid, series_number=10 + s if split else 10,
                            instance_number=p * arr.shape[0] + s + 1, ipp=ipp,
                            trigger_time=times[p] + (0.3 * s if split else 0.0), n_phases=len(phase_images),
                            iop=(direction[:, 0], direction[:, 1]), spacing=(sy, sx),
                            description=f"CINE_segmented_SAX_b{s + 1}" if split else "cine_sax")
            ds.RescaleSlope, ds.RescaleIntercept = 1.0, 0.0
            datasets.append(ds)
            if layout == "one_series":
                ds.save_as(folder / f"IM{p:02d}{s:03d}.dcm", enforce_file_format=True)
            elif split:
                (folder / f"series{10 + s}").mkdir(exist_ok=True)
                ds.save_as(folder / f"series{10 + s}" / f"IM{p:02d}.dcm", enforce_file_format=True)
    if layout == "enhanced":
        import highdicom as hd

        enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(datasets, series_instance_uid=generate_uid(),
                                                            series_number=20, sop_instance_uid=generate_uid(),
                                                            instance_number=1)
        enhanced.save_as(folder / "enhanced.dcm", enforce_file_format=True)
    return folder


def contraction(n_phases: int, es: int) -> list[float]:
    """Contraction per phase, 0 at phase 0 (ED), 1 at `es` only (linear up, linear back): the smallest cavity."""
    if not 0 < es < n_phases:
        raise ValueError(f"ES phase {es} must lie within 1..{n_phases - 1}")
    return [p / es if p <= es else (n_phases - p) / (n_phases - es) for p in range(n_phases)]


def contracted_phase(image, mask, c: float, k: float = 0.7):
    """The ED `image` (SimpleITK 3D) contracted by `c` in [0, 1]: per slice, a radial warp about the myocardium's
    centroid shrinks the endocardial radius to (1 - c (1 - k)) of ED and thickens the wall inward; the
    epicardium and everything outside it stay where they are (moving them pulled the RV blood pool against the
    LV wall, where a segmenter rightly took it for cavity). The cavity so shrinks strictly with c. Radii are
    the equivalent circles of the ED mask's cavity and filled epicardium per slice; slices without a closed
    myocardial ring are kept. Pixels are resampled linearly and rounded (non-negative integers), so they can
    be stored as they are (`write_cine_from_images`)."""
    import SimpleITK as sitk
    from scipy import ndimage

    arr = sitk.GetArrayFromImage(image).astype(np.float64)
    myo = sitk.GetArrayFromImage(mask) > 0
    sx, sy = image.GetSpacing()[:2]
    out = arr.copy()
    yy, xx = np.mgrid[:arr.shape[1], :arr.shape[2]].astype(np.float64)
    for s in range(arr.shape[0]):
        filled = ndimage.binary_fill_holes(myo[s])
        cavity = filled & ~myo[s]
        if not cavity.any():
            continue
        cy, cx = ndimage.center_of_mass(myo[s])
        dx, dy = (xx - cx) * sx, (yy - cy) * sy
        r = np.hypot(dx, dy)
        endo = np.sqrt(cavity.sum() * sx * sy / np.pi)
        epi = np.sqrt(filled.sum() * sx * sy / np.pi)
        endo_c = endo * (1.0 - c * (1.0 - k))
        r_src = np.interp(r, [0.0, endo_c, epi, epi + 1e6], [0.0, endo, epi, epi + 1e6])
        scale = np.divide(r_src, r, out=np.ones_like(r), where=r > 0)
        coords = np.stack([cy + dy * scale / sy, cx + dx * scale / sx])
        out[s] = ndimage.map_coordinates(arr[s], coords, order=1, mode="nearest")
    img = sitk.GetImageFromArray(np.clip(np.round(out), 0, None).astype(np.uint16))
    img.CopyInformation(image)
    return img


def contracting_cine(ed_image, ed_mask, n_phases: int, es: int, k: float = 0.7) -> list:
    """`n_phases` phase images from one ED image and mask, contracting linearly to `es` and back
    (`contraction`, `contracted_phase`): a cine whose smallest LV cavity is at `es` by construction."""
    return [contracted_phase(ed_image, ed_mask, c, k) for c in contraction(n_phases, es)]
