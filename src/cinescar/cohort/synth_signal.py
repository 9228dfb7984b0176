"""Signal side of the synthetic cohort: tissues, the bSSFP equation, vendor profiles, noise and artifacts.

Why a physical signal model rather than hand-picked grey values: the paper's premise is that bSSFP cine
intensity is weighted by T2/T1 and that scar perturbs T1 and T2. Computing every pixel from the steady-state
equation with per-tissue relaxation times and per-vendor flip angle / TR makes the scar's visibility
depend on the acquisition exactly as it would in a scanner (it can be brighter or darker than healthy
myocardium, and by how much depends on the vendor), instead of being a constant we chose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Tissue:
    """Relaxation times (ms) and proton density (relative, water = 1) at 1.5 T."""

    t1: float
    t2: float
    pd: float


# 1.5 T literature values (rounded): myocardium native T1 ~950-1050 ms, T2 ~45-55 ms (MOLLI/T2-prep
# mapping studies); arterial blood T1 ~1550 ms, T2 ~250 ms; subcutaneous/epicardial fat T1 ~260 ms,
# T2 ~70 ms; liver T1 ~580 ms, T2 ~45 ms; skeletal muscle T1 ~1000 ms, T2 ~35 ms. Lung parenchyma is
# mostly air: a low proton density stands in for its very short T2*.
TISSUES: dict[str, Tissue] = {
    "myocardium": Tissue(t1=1000.0, t2=45.0, pd=0.80),
    "blood": Tissue(t1=1550.0, t2=250.0, pd=0.95),
    "fat": Tissue(t1=260.0, t2=70.0, pd=0.90),
    "liver": Tissue(t1=580.0, t2=45.0, pd=0.70),
    "muscle": Tissue(t1=1000.0, t2=35.0, pd=0.75),
    "soft_tissue": Tissue(t1=900.0, t2=55.0, pd=0.70),
    "lung": Tissue(t1=1200.0, t2=40.0, pd=0.12),
    "air": Tissue(t1=1000.0, t2=1.0, pd=0.0),
}


def bssfp_signal(t1, t2, pd, flip_deg: float, tr_ms: float, te_ms: float):
    """Balanced SSFP steady-state magnitude (on resonance).

    S = M0 sin(a) (1 - E1) / (1 - (E1 - E2) cos(a) - E1 E2) * exp(-TE/T2), E1 = exp(-TR/T1), E2 = exp(-TR/T2).
    Works element-wise on arrays, so a pixel-wise T1/T2 map gives a pixel-wise signal map.
    """
    t1 = np.asarray(t1, dtype=np.float64)
    t2 = np.asarray(t2, dtype=np.float64)
    a = np.deg2rad(flip_deg)
    e1 = np.exp(-tr_ms / t1)
    e2 = np.exp(-tr_ms / t2)
    return pd * np.sin(a) * (1.0 - e1) / (1.0 - (e1 - e2) * np.cos(a) - e1 * e2) * np.exp(-te_ms / t2)


@dataclass(frozen=True)
class CentreProfile:
    """One acquisition centre: its scanner and the ranges its protocol and reconstruction draw from.

    Ranges are (low, high), drawn uniformly per patient. `scale` is the integer intensity that blood
    gets (DICOM grey values are arbitrary per vendor and protocol); `snr` is the myocardium signal over
    the noise standard deviation before the bias field; `bias` the standard deviation of the
    log-coil-sensitivity polynomial; `blur_px` the point-spread (acquired resolution coarser than the
    reconstructed matrix); `artifact_rate` the share of patients with banding / ghosting / motion blur.
    """

    name: str
    vendor: str
    cohort: str
    weight: float
    flip_deg: tuple[float, float]
    tr_ms: tuple[float, float]
    pixel_mm: tuple[float, float]
    matrix: tuple[int, int]  # (rows, cols)
    snr: tuple[float, float]
    bias: float
    scale: tuple[float, float]
    blur_px: float
    noise_blur_px: float
    artifact_rate: float
    blood_flow: tuple[float, float]  # inflow enhancement of blood signal


# Internal centres mimic the paper's mix (Philips 56 %, GE 18 %, Siemens 26 %; Tufts 321, Minneapolis
# 125, Toronto 141, Italy 172 of 759) under pseudonymous names; the external centre mimics a single
# Philips site with a different protocol, lower SNR and more artifacts (paper: 16 of the 29 cases every
# model misclassified had artifacts).
CENTRES: tuple[CentreProfile, ...] = (
    CentreProfile("Centre A", "Philips", "internal", 0.42, (55, 60), (2.8, 3.2), (1.17, 1.37), (256, 256),
                  (18, 30), 0.25, (150, 600), 0.6, 0.0, 0.05, (1.00, 1.10)),
    CentreProfile("Centre B", "GE", "internal", 0.17, (45, 55), (3.2, 3.6), (1.25, 1.40), (224, 224),
                  (15, 25), 0.35, (800, 2500), 0.8, 0.0, 0.05, (1.00, 1.15)),
    CentreProfile("Centre C", "Siemens", "internal", 0.19, (39, 50), (2.5, 3.0), (0.62, 0.80), (256, 320),
                  (20, 32), 0.30, (200, 1000), 1.0, 0.6, 0.05, (0.95, 1.10)),
    CentreProfile("Centre D", "Philips", "internal", 0.22, (50, 60), (2.6, 3.0), (0.95, 1.15), (288, 288),
                  (16, 28), 0.20, (300, 900), 0.7, 0.0, 0.05, (1.00, 1.10)),
    CentreProfile("Centre E", "Philips", "external", 1.00, (39, 45), (3.3, 3.6), (1.25, 1.40), (240, 240),
                  (11, 18), 0.45, (1500, 4000), 1.0, 0.0, 0.35, (0.90, 1.20)),
)


def centres(cohort: str) -> list[CentreProfile]:
    return [c for c in CENTRES if c.cohort == cohort]


@dataclass(frozen=True)
class Acquisition:
    """One patient's drawn protocol (both phases share it)."""

    centre: str
    vendor: str
    flip_deg: float
    tr_ms: float
    te_ms: float
    pixel_mm: float
    rows: int
    cols: int
    slice_thickness_mm: float
    slice_spacing_mm: float
    snr: float
    scale: float
    blur_px: float
    noise_blur_px: float
    bias_coef: tuple[float, ...]
    blood_flow: float
    artifact: str  # "", "banding", "ghosting" or "motion"


ARTIFACTS = ("banding", "ghosting", "motion")


def draw_acquisition(profile: CentreProfile, rng: np.random.Generator, artifact_rate: float | None = None
                     ) -> Acquisition:
    """Draw one patient's protocol from the centre's ranges."""
    u = rng.uniform
    tr = round(float(u(*profile.tr_ms)), 2)
    thickness = float(rng.choice([8.0, 8.0, 10.0]))
    spacing = float(min(10.0, thickness + rng.choice([0.0, 0.0, 1.0, 2.0])))
    rate = profile.artifact_rate if artifact_rate is None else artifact_rate
    artifact = str(rng.choice(ARTIFACTS)) if rng.random() < rate else ""
    return Acquisition(
        centre=profile.name, vendor=profile.vendor,
        flip_deg=round(float(u(*profile.flip_deg))), tr_ms=tr, te_ms=round(tr / 2.0, 2),
        pixel_mm=round(float(u(*profile.pixel_mm)), 4), rows=profile.matrix[0], cols=profile.matrix[1],
        slice_thickness_mm=thickness, slice_spacing_mm=spacing,
        snr=float(u(*profile.snr)), scale=float(np.exp(u(*np.log(profile.scale)))),
        blur_px=profile.blur_px, noise_blur_px=profile.noise_blur_px,
        bias_coef=tuple(float(c) for c in rng.normal(0.0, profile.bias, size=6)),
        blood_flow=float(u(*profile.blood_flow)), artifact=artifact,
    )


def tissue_signals(acq: Acquisition) -> dict[str, float]:
    """Signal of every background tissue under this protocol (blood includes inflow enhancement)."""
    out = {name: float(bssfp_signal(t.t1, t.t2, t.pd, acq.flip_deg, acq.tr_ms, acq.te_ms))
           for name, t in TISSUES.items()}
    out["blood"] *= acq.blood_flow
    return out


def bias_field(x_mm: np.ndarray, y_mm: np.ndarray, coef: tuple[float, ...]) -> np.ndarray:
    """Smooth multiplicative coil sensitivity: exp of a quadratic polynomial over a ~150 mm scale."""
    xn, yn = x_mm / 150.0, y_mm / 150.0
    c = coef
    log_b = c[0] * xn + c[1] * yn + 0.5 * (c[2] * xn**2 + c[3] * yn**2 + c[4] * xn * yn) + 0.2 * c[5]
    return np.exp(log_b)


def banding(signal: np.ndarray, x_mm: np.ndarray, y_mm: np.ndarray, acq: Acquisition,
            rng: np.random.Generator) -> np.ndarray:
    """bSSFP off-resonance banding: dark bands where the accumulated phase per TR crosses pi.

    The off-resonance field is a random linear + quadratic map in Hz (shim imperfection near the heart-lung
    interface); bands follow its iso-contours at f = (2k+1) / (2 TR).
    """
    g = rng.normal(0.0, 1.0, size=4)
    f_hz = 60.0 * g[0] + 1.6 * g[1] * x_mm + 1.6 * g[2] * y_mm + 0.01 * g[3] * (x_mm**2 + y_mm**2)
    phase = np.mod(2 * np.pi * f_hz * acq.tr_ms * 1e-3, 2 * np.pi)
    band = np.exp(-0.5 * ((phase - np.pi) / 0.35) ** 2)
    return signal * (1.0 - 0.85 * band)


def ghosting(complex_img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Respiratory / cardiac ghosts: faint copies shifted along the phase-encode (row) axis."""
    rows = complex_img.shape[-2]
    shift = int(rng.integers(rows // 6, rows // 2))
    amp = float(rng.uniform(0.08, 0.2))
    return complex_img + amp * np.roll(complex_img, shift, axis=-2) + 0.5 * amp * np.roll(complex_img, -shift, axis=-2)


def motion_blur(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Through-breath-hold drift: blur along one in-plane direction."""
    sigma = float(rng.uniform(1.5, 3.5))
    axis = int(rng.integers(-2, 0))
    return ndimage.gaussian_filter1d(signal, sigma, axis=axis, mode="nearest")


def acquire(signal: np.ndarray, bias: np.ndarray, noise_sd: float, acq: Acquisition, x_mm: np.ndarray,
            y_mm: np.ndarray, rng: np.random.Generator, artifact_slices: np.ndarray | None) -> np.ndarray:
    """Noiseless signal stack (slices, rows, cols) -> magnitude image with blur, bias, artifacts, Rician noise.

    Order follows the physics: tissue signal x coil sensitivity, blurred by the point-spread of the
    acquisition, complex Gaussian noise added, magnitude taken (hence Rician), then interpolation blur
    (correlated noise) where the centre zero-fills.
    """
    img = (signal * bias[None]).astype(np.float32)
    if acq.blur_px > 0:
        img = ndimage.gaussian_filter(img, sigma=(0, acq.blur_px, acq.blur_px), mode="nearest")
    sel = artifact_slices if artifact_slices is not None else np.zeros(len(img), dtype=bool)
    if acq.artifact == "banding" and sel.any():
        img[sel] = banding(img[sel], x_mm[None], y_mm[None], acq, rng)
    if acq.artifact == "motion" and sel.any():
        img[sel] = motion_blur(img[sel], rng)
    noise = rng.standard_normal(size=(2,) + img.shape, dtype=np.float32) * np.float32(noise_sd)
    if acq.artifact == "ghosting" and sel.any():
        cplx = (img + noise[0]) + 1j * noise[1]
        cplx[sel] = ghosting(cplx[sel], rng)
        mag = np.abs(cplx).astype(np.float32)
    else:
        mag = np.hypot(img + noise[0], noise[1])
    if acq.noise_blur_px > 0:
        mag = ndimage.gaussian_filter(mag, sigma=(0, acq.noise_blur_px, acq.noise_blur_px), mode="nearest")
    return mag


def to_dicom_range(mag: np.ndarray, scale_per_unit: float) -> np.ndarray:
    """Arbitrary vendor scaling to integer grey values, stored as int16 like most DICOM cine."""
    return np.clip(np.rint(mag * scale_per_unit), 0, 32767).astype(np.int16)
