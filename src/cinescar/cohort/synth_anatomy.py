"""Anatomy side of the synthetic cohort: HCM left ventricle, RV, surroundings, scar geometry.

The LV is a truncated ellipsoid whose wall thickness varies with angle and height (asymmetric septal,
apical, concentric or free-wall hypertrophy). End-systole is derived from end-diastole by conserving
myocardial volume (cavity shrinks by the drawn ejection fraction, the long axis shortens, so walls
thicken) -- wall thickening is then a consequence, not an independent draw. Scar lives in tissue
coordinates (angle around the LV, relative wall depth rho in [0, 1]), so the same scar appears, deformed,
at ED and ES.

Everything here is geometry in millimetres; the signal module turns tissues into grey values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

TWO_PI = 2.0 * np.pi
MYO_DENSITY_G_PER_ML = 1.05


def wrap_angle(a):
    """Angle difference folded into (-pi, pi]."""
    return (np.asarray(a) + np.pi) % TWO_PI - np.pi


@dataclass(frozen=True)
class Anatomy:
    """One patient's heart and torso (ED geometry; ES is derived)."""

    r_cavity: float  # ED endocardial radius at the base plane (mm)
    length: float  # ED base-to-endocardial-apex distance (mm)
    t_base: float  # wall thickness away from the hypertrophy (mm)
    t_apex: float  # apical cap thickness (mm)
    hyp_amp: float  # extra thickness at the hypertrophy peak (mm)
    hyp_theta: float  # angle of the peak (rad, image frame)
    hyp_width: float  # angular sigma (rad)
    hyp_u: float  # height of the peak, 0 = base, 1 = endocardial apex
    hyp_width_u: float
    concentric: float  # share of the hypertrophy applied all around
    phenotype: str  # septal | apical | concentric | free-wall
    ef_target: float  # ejection fraction the ES cavity is built for (0-1)
    shortening: float  # ES/ED long-axis ratio
    theta_septum: float  # direction LV centre -> RV centre (rad)
    centre_x: float  # LV centre relative to the field-of-view centre (mm)
    centre_y: float
    rv_width: float  # RV cavity width beyond the septum at the base (mm, ED)
    rv_span: float  # RV semi-axis across the septal direction, in LV epicardial radii
    rv_wall: float
    rv_es: float  # ES/ED RV size ratio
    pap_r: float  # papillary muscle radius (mm, ED)
    peri_fat: float  # pericardial fat thickness (mm)
    peri_phase: tuple[float, ...]  # random Fourier phases of the patchy pericardial fat
    body_a: float
    body_b: float
    body_dx: float
    body_dy: float
    subcut_fat: float
    native_t1: float  # patient's healthy myocardium T1 (ms)
    native_t2: float
    t1_per_10mm: float  # rise of native T1 per 10 mm of extra wall (diffuse HCM change, all patients)
    heart_rate: float

    def thickness(self, theta, u):
        """ED wall thickness (mm) at angle theta and height u (broadcasts)."""
        u_c = np.clip(u, 0.0, 1.0)
        ang = (1.0 - self.concentric) * np.exp(-0.5 * (wrap_angle(theta - self.hyp_theta) / self.hyp_width) ** 2)
        ang = ang + self.concentric
        along = np.exp(-0.5 * ((u_c - self.hyp_u) / self.hyp_width_u) ** 2)
        return self.t_base + (self.t_apex - self.t_base) * u_c**2 + self.hyp_amp * ang * along

    @property
    def ejection_k(self) -> float:
        """In-plane cavity scale at ES: EF = 1 - k^2 s for an ellipsoid."""
        return float(np.sqrt(max(1.0 - self.ef_target, 0.05) / self.shortening))


def lv_radii(anat: Anatomy, theta, z, phase: str):
    """Endocardial and epicardial radius (mm) at angle theta and height z (mm below the base plane).

    ED: endocardium R sqrt(1-(z/L)^2); epicardium (R + t) sqrt(1-(z/(L+t_apex))^2).
    ES: material at ED height z/s moves to z; cavity radius scaled by k; the myocardial annulus area is
    conserved (divided by s because the slab is shorter), which thickens the wall.
    """
    z = np.asarray(z, dtype=np.float64)
    if phase == "ES":
        z_ed = z / anat.shortening
        endo_ed, epi_ed = lv_radii(anat, theta, z_ed, "ED")
        endo = anat.ejection_k * endo_ed
        epi = np.sqrt(endo**2 + (epi_ed**2 - endo_ed**2) / anat.shortening)
        return endo, epi
    L, R = anat.length, anat.r_cavity
    endo = R * np.sqrt(np.clip(1.0 - (z / L) ** 2, 0.0, None)) * (z < L)
    epi = (R + anat.thickness(theta, z / L)) * np.sqrt(np.clip(1.0 - (z / (L + anat.t_apex)) ** 2, 0.0, None))
    return endo, epi


def analytic_metrics(anat: Anatomy) -> dict[str, float]:
    """True LV mass (g), ED volume (ml) and maximal wall thickness (mm) of the continuous geometry.

    Used by the label model, which must not depend on where the slices happen to fall; the manifest's
    values are measured on the rendered stack instead (as a reader would).
    """
    theta = np.linspace(-np.pi, np.pi, 90, endpoint=False)[None, :]
    z = np.linspace(0.0, anat.length + anat.t_apex, 80)[:, None]
    dz = z[1, 0] - z[0, 0]
    endo, epi = lv_radii(anat, theta, z, "ED")
    endo = np.broadcast_to(endo, epi.shape)
    dtheta = TWO_PI / theta.shape[1]
    myo_area = 0.5 * ((epi**2 - endo**2) * dtheta).sum(axis=1)
    cav_area = 0.5 * ((endo**2) * dtheta).sum(axis=1)
    zu = np.linspace(0.0, 0.8, 33)[:, None] * anat.length
    e, p = lv_radii(anat, theta, zu, "ED")
    return {"LVM": float(myo_area.sum() * dz / 1000.0 * MYO_DENSITY_G_PER_ML),
            "LVEDV": float(cav_area.sum() * dz / 1000.0),
            "MWT": float((p - e).max())}


PHENOTYPES = ("septal", "apical", "concentric", "free-wall")
PHENOTYPE_P = (0.70, 0.10, 0.10, 0.10)


def draw_anatomy(rng: np.random.Generator, sex: str, bmi: float, height_cm: float) -> Anatomy:
    """Draw one HCM heart and torso. Distributions are tuned to the paper's Table 1 (see docs)."""
    male = sex == "M"
    size = (height_cm / 170.0) ** 0.5
    length = float(np.clip(rng.normal(84.0, 7.0) * size * (1.03 if male else 0.97), 68.0, 105.0))
    edv = float(np.clip(rng.normal(158.0 if male else 132.0, 36.0), 80.0, 280.0))
    r_cav = float(np.sqrt(edv * 1000.0 / (2.0 / 3.0 * np.pi * length)))
    t_base = float(np.clip(rng.normal(8.5, 1.2), 6.0, 11.5))
    mwt = float(np.clip(rng.normal(18.5, 5.0), t_base + 2.5, 34.0))
    phenotype = str(rng.choice(PHENOTYPES, p=PHENOTYPE_P))
    theta_s = float(np.pi + rng.normal(0.0, 0.25))
    if phenotype == "septal":
        hyp_theta = theta_s + rng.normal(0.0, 0.35)
        hyp_width, hyp_u, hyp_wu, conc = rng.uniform(0.45, 0.8), rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.4), rng.uniform(0.0, 0.2)
    elif phenotype == "apical":
        hyp_theta = theta_s + rng.uniform(-np.pi, np.pi)
        hyp_width, hyp_u, hyp_wu, conc = rng.uniform(0.6, 1.2), rng.uniform(0.6, 0.72), rng.uniform(0.15, 0.25), rng.uniform(0.4, 0.8)
    elif phenotype == "concentric":
        hyp_theta = theta_s + rng.normal(0.0, 0.5)
        hyp_width, hyp_u, hyp_wu, conc = rng.uniform(0.6, 1.0), rng.uniform(0.3, 0.5), rng.uniform(0.3, 0.45), rng.uniform(0.5, 0.9)
    else:
        hyp_theta = theta_s + rng.uniform(0.5 * np.pi, 1.5 * np.pi)
        hyp_width, hyp_u, hyp_wu, conc = rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.35), rng.uniform(0.0, 0.2)
    body_a = float(np.clip(140.0 + 2.2 * (bmi - 25.0) + rng.normal(0.0, 8.0), 115.0, 210.0))
    return Anatomy(
        r_cavity=r_cav, length=length, t_base=t_base, t_apex=float(np.clip(rng.normal(7.0, 1.5), 4.0, 11.0)),
        hyp_amp=mwt - t_base, hyp_theta=float(wrap_angle(hyp_theta)), hyp_width=float(hyp_width),
        hyp_u=float(hyp_u), hyp_width_u=float(hyp_wu), concentric=float(conc), phenotype=phenotype,
        ef_target=float(np.clip(rng.normal(0.68, 0.08), 0.50, 0.85)), shortening=float(rng.uniform(0.85, 0.92)),
        theta_septum=theta_s, centre_x=float(rng.normal(0.0, 8.0)), centre_y=float(rng.normal(0.0, 8.0)),
        rv_width=float(rng.uniform(14.0, 28.0)), rv_span=float(rng.uniform(0.8, 0.95)),
        rv_wall=float(rng.uniform(2.5, 4.0)), rv_es=float(rng.uniform(0.72, 0.85)),
        pap_r=float(rng.uniform(3.0, 5.0)), peri_fat=float(rng.uniform(2.0, 7.0)),
        peri_phase=tuple(float(p) for p in rng.uniform(0.0, TWO_PI, size=4)),
        body_a=body_a, body_b=float(body_a * rng.uniform(0.66, 0.78)),
        body_dx=float(-30.0 + rng.normal(0.0, 8.0)), body_dy=float(30.0 + rng.normal(0.0, 8.0)),
        subcut_fat=float(np.clip(8.0 + 1.3 * (bmi - 25.0) + rng.normal(0.0, 3.0), 4.0, 40.0)),
        native_t1=float(rng.normal(1000.0, 25.0)), native_t2=float(rng.normal(46.0, 2.0)),
        t1_per_10mm=float(rng.uniform(0.01, 0.04)),
        heart_rate=float(np.clip(rng.normal(68.0, 11.0), 45.0, 110.0)),
    )


# ----------------------------------------------------------------------------------------------------
# rendering helpers: soft (partial-volume) masks on a pixel grid

def soft_inside(distance_inside_mm, pixel_mm: float):
    """Area fraction of a pixel inside a boundary, from the signed distance (positive inside)."""
    return np.clip(0.5 + distance_inside_mm / pixel_mm, 0.0, 1.0)


def ellipse_fraction(x, y, cx, cy, a, b, angle, pixel_mm):
    """Soft fraction of an ellipse (semi-axes a along `angle`, b across); a, b may broadcast per slice."""
    dx, dy = x - cx, y - cy
    ca, sa = np.cos(angle), np.sin(angle)
    pa, pb = dx * ca + dy * sa, -dx * sa + dy * ca
    a = np.maximum(a, 1e-6)
    b = np.maximum(b, 1e-6)
    rho = np.sqrt((pa / a) ** 2 + (pb / b) ** 2)
    r = np.sqrt(pa**2 + pb**2)
    dist = np.where(rho > 1e-9, r * (1.0 - rho) / np.maximum(rho, 1e-9), np.minimum(a, b))
    out = soft_inside(dist, pixel_mm)
    return out * ((a > 0.5) & (b > 0.5))


@dataclass
class Grid:
    """Pixel-centre coordinates (mm) of an image (or a crop of it) in the LV-centred frame."""

    x: np.ndarray  # (h, w)
    y: np.ndarray
    pixel_mm: float
    rows: slice = field(default_factory=lambda: slice(None))
    cols: slice = field(default_factory=lambda: slice(None))

    @property
    def r(self) -> np.ndarray:
        return np.hypot(self.x, self.y)

    @property
    def theta(self) -> np.ndarray:
        return np.arctan2(self.y, self.x)


def image_grid(anat: Anatomy, rows: int, cols: int, pixel_mm: float) -> Grid:
    """Whole-image grid: field-of-view centre at the image centre, LV centre offset by (centre_x, centre_y)."""
    y = (np.arange(rows) - (rows - 1) / 2.0) * pixel_mm - anat.centre_y
    x = (np.arange(cols) - (cols - 1) / 2.0) * pixel_mm - anat.centre_x
    xx, yy = np.meshgrid(x, y)
    return Grid(xx, yy, pixel_mm)


def heart_crop(full: Grid, extent_mm: float) -> Grid:
    """The part of the grid within extent_mm of the LV centre (all heart layers live there)."""
    rows = np.where(np.abs(full.y[:, 0]) <= extent_mm)[0]
    cols = np.where(np.abs(full.x[0, :]) <= extent_mm)[0]
    rs = slice(int(rows.min()), int(rows.max()) + 1) if len(rows) else slice(0, 0)
    cs = slice(int(cols.min()), int(cols.max()) + 1) if len(cols) else slice(0, 0)
    return Grid(full.x[rs, cs], full.y[rs, cs], full.pixel_mm, rs, cs)


def heart_extent(anat: Anatomy) -> float:
    """Half-width (mm) of a square around the LV centre that holds LV, RV and pericardial fat."""
    r_epi = anat.r_cavity + anat.t_base + anat.hyp_amp
    return max(r_epi + anat.rv_width, anat.rv_span * r_epi + 0.3 * anat.rv_width) + anat.rv_wall + anat.peri_fat + 8.0


def background_layers(anat: Anatomy, grid: Grid, z_slices: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Torso layers, painted in order: subcutaneous fat, muscle, mediastinum, lungs, aorta, liver.

    Only the liver changes with height (it comes into view towards the apex); the rest is the same on
    every slice, returned as (h, w) arrays; the liver as (slices, h, w).
    """
    x, y, px = grid.x, grid.y, grid.pixel_mm
    bx, by = anat.body_dx, anat.body_dy
    a, b, f = anat.body_a, anat.body_b, anat.subcut_fat
    layers = [
        ("fat", ellipse_fraction(x, y, bx, by, a, b, 0.0, px)),
        ("muscle", ellipse_fraction(x, y, bx, by, a - f, b - f, 0.0, px)),
        ("soft_tissue", ellipse_fraction(x, y, bx, by, a - f - 12.0, b - f - 12.0, 0.0, px)),
        ("lung", ellipse_fraction(x, y, -105.0, 5.0, 42.0, 72.0, 0.15, px)),
        ("lung", ellipse_fraction(x, y, 88.0, 10.0, 38.0, 68.0, -0.2, px)),
        ("blood", ellipse_fraction(x, y, 28.0, 72.0, 11.0, 11.0, 0.0, px)),
    ]
    u = (np.asarray(z_slices) / anat.length)[:, None, None]
    g = np.clip((u - 0.35) / 0.45, 0.0, 1.0)
    layers.append(("liver", ellipse_fraction(x[None], y[None], -55.0, 100.0, 95.0 * g, 70.0 * g, 0.3, px)))
    return layers


def lv_extent(anat: Anatomy) -> float:
    """Half-width (mm) of a square around the LV centre that holds the LV at ED and ES."""
    return anat.r_cavity + anat.t_base + anat.hyp_amp + 4.0


@dataclass
class LVLayers:
    """Soft fractions (slices * sub-planes, h, w) of the LV at one phase, plus its tissue coordinates."""

    epi: np.ndarray  # disc inside the epicardium (myocardium + cavity)
    endo: np.ndarray  # disc inside the endocardium (cavity)
    present: np.ndarray  # (planes,) True below the base plane (LV myocardium, not atrium)
    rho: np.ndarray  # relative wall depth, 0 endocardium .. 1 epicardium
    theta: np.ndarray  # (h, w) angle around the LV centre


def lv_layers(anat: Anatomy, grid: Grid, z_slices: np.ndarray, offsets_mm: np.ndarray, phase: str) -> LVLayers:
    """The LV at len(offsets_mm) through-plane sub-planes per slice (partial volume where base and apex
    cut the 8-10 mm slices obliquely). Sub-planes above the base plane show an atrium / outflow tract
    (blood with a thin wall) instead of LV myocardium."""
    px = grid.pixel_mm
    theta, r = grid.theta, grid.r
    z = (np.asarray(z_slices, dtype=np.float64)[:, None] + np.asarray(offsets_mm)[None]).ravel()
    present = z >= 0.0
    endo, epi = lv_radii(anat, theta[None], np.maximum(z, 0.0)[:, None, None], phase)
    atrium = ~present[:, None, None]
    endo = np.where(atrium, 0.95 * anat.r_cavity, endo)
    epi = np.where(atrium, 0.95 * anat.r_cavity + 2.0, epi)
    return LVLayers(soft_inside(epi - r[None], px).astype(np.float32),
                    soft_inside(endo - r[None], px).astype(np.float32), present,
                    np.clip((r[None] - endo) / np.maximum(epi - endo, 1e-3), 0.0, 1.0).astype(np.float32), theta)


def rv_ellipse(anat: Anatomy, z: np.ndarray, phase: str):
    """RV cavity ellipse per slice: centre c on the septal axis, semi-axes a (along) and b (across).

    Centred 0.5 E from the LV centre (E = epicardial radius at the septum) and reaching W beyond the
    septum, it is mostly covered by the LV painted after it; what shows is a crescent wrapping the
    septum, meeting the LV at the two RV insertion points (about 70-90 degrees either side of the septal axis). It tapers towards the apex (g -> 0) and is
    smaller at ES. Above the base plane E is that of the atrium.
    """
    z = np.asarray(z, dtype=np.float64)
    zc = np.maximum(z, 0.0)
    g = np.sqrt(np.clip(1.0 - (zc / (0.9 * anat.length)) ** 2, 0.0, None))
    ts = anat.theta_septum
    _, e = lv_radii(anat, np.array(ts), zc, phase)
    _, e1 = lv_radii(anat, np.array(ts + 0.5 * np.pi), zc, phase)
    _, e2 = lv_radii(anat, np.array(ts - 0.5 * np.pi), zc, phase)
    atrium = 0.95 * anat.r_cavity + 2.0
    e = np.where(z >= 0.0, e, atrium)
    e_across = np.where(z >= 0.0, 0.5 * (e1 + e2), atrium)
    width = anat.rv_width * g * (anat.rv_es if phase == "ES" else 1.0)
    c = 0.5 * e
    a = 0.5 * e + width
    b = (anat.rv_span * e_across + 0.3 * width) * (0.5 + 0.5 * g) * (anat.rv_es if phase == "ES" else 1.0) ** 0.5
    return c, a * (g > 0.05), b * (g > 0.05), g


def surround_layers(anat: Anatomy, grid: Grid, z_slices: np.ndarray, phase: str) -> list[tuple[str, np.ndarray]]:
    """Pericardial fat, RV wall and RV blood (slices, h, w), painted in this order before the LV.

    They vary slowly along the long axis, so they are rendered at slice centres only. The RV is an
    ellipse on the septal side, overlapped by the LV; all three shapes are centred on the septal axis,
    so one rotation of the grid serves every slice.
    """
    px = grid.pixel_mm
    ts = anat.theta_septum
    pa0 = grid.x * np.cos(ts) + grid.y * np.sin(ts)
    pb0 = -grid.x * np.sin(ts) + grid.y * np.cos(ts)
    zs = np.asarray(z_slices, dtype=np.float64)
    c, a, b, g = rv_ellipse(anat, zs, phase)
    col = lambda v: np.asarray(v, dtype=np.float64)[:, None, None]  # noqa: E731
    w = anat.rv_wall
    rv_wall = _axis_ellipse(pa0, pb0, col(c), col(a + w), col(b + w), px)
    rv_blood = _axis_ellipse(pa0, pb0, col(c), col(a), col(b), px)
    _, epi_lat = lv_radii(anat, np.array(ts + np.pi), np.maximum(zs, 0.0), phase)
    far_rv, far_lv = c + a + w, np.maximum(epi_lat, 0.0)
    env_a = 0.5 * (far_rv + far_lv) + anat.peri_fat
    env_b = np.maximum(b + w, epi_lat) + anat.peri_fat
    peri = _axis_ellipse(pa0, pb0, col(0.5 * (far_rv - far_lv)), col(env_a), col(env_b), px)
    phi = np.arctan2(grid.y, grid.x)
    p = anat.peri_phase
    patch = 0.5 + 0.35 * np.sin(2 * phi + p[0]) + 0.3 * np.sin(3 * phi + p[1]) + 0.2 * np.sin(5 * phi + p[2])
    peri = peri * np.clip(patch, 0.0, 1.0)[None] * col(g > 0.05)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    return [("fat", f32(peri)), ("rv_wall", f32(rv_wall)), ("rv_blood", f32(rv_blood))]


def papillary_layers(anat: Anatomy, grid: Grid, z_slices: np.ndarray, phase: str) -> list[np.ndarray]:
    """Two papillary muscles opposite the septum in the mid ventricle, thicker at ES (slices, h, w)."""
    px = grid.pixel_mm
    ts = anat.theta_septum
    zs = np.asarray(z_slices, dtype=np.float64)
    zc = np.maximum(zs, 0.0)
    u = zs / anat.length
    bump = np.exp(-0.5 * ((u - 0.45) / 0.15) ** 2) * (zs >= 0.0)
    endo_mid, _ = lv_radii(anat, np.array(0.0), zc, phase)
    pr = np.minimum(anat.pap_r * bump * (1.35 if phase == "ES" else 1.0), 0.4 * endo_mid)
    col = lambda v: np.asarray(v, dtype=np.float64)[:, None, None]  # noqa: E731
    out = []
    for off in (0.8, -0.8):
        ang = ts + np.pi + off
        pd = np.maximum(endo_mid - pr - 1.0, 0.0)
        dist = np.hypot(grid.x[None] - col(pd * np.cos(ang)), grid.y[None] - col(pd * np.sin(ang)))
        out.append((soft_inside(col(pr) - dist, px) * col(pr > 0.3)).astype(np.float32))
    return out


def _axis_ellipse(pa, pb, c, a, b, pixel_mm):
    """Soft fraction of ellipses centred at (c, 0) in a rotated frame, semi-axes a (along) and b (across)."""
    qa = pa[None] - c
    a = np.maximum(a, 1e-6)
    b = np.maximum(b, 1e-6)
    rho = np.sqrt((qa / a) ** 2 + (pb[None] / b) ** 2)
    r = np.sqrt(qa**2 + pb[None] ** 2)
    dist = r * (1.0 - rho) / np.maximum(rho, 1e-9)
    return soft_inside(dist, pixel_mm) * ((a > 0.5) & (b > 0.5))


def rv_insertion_angles(anat: Anatomy, z: float) -> tuple[float, float]:
    """Angles where the RV wall meets the LV epicardium at height z (ED): the two RV insertion points."""
    ts = anat.theta_septum
    theta = ts + np.linspace(-np.pi, np.pi, 721)
    _, epi = lv_radii(anat, theta, np.full_like(theta, max(z, 0.0)), "ED")
    c, a, b, _ = (float(np.ravel(v)[0]) for v in rv_ellipse(anat, np.array([z]), "ED"))
    a, b = a + anat.rv_wall, b + anat.rv_wall
    px, py = (epi + 1.0) * np.cos(theta), (epi + 1.0) * np.sin(theta)
    pa = px * np.cos(ts) + py * np.sin(ts) - c
    pb = -px * np.sin(ts) + py * np.cos(ts)
    inside = (pa / max(a, 1e-6)) ** 2 + (pb / max(b, 1e-6)) ** 2 <= 1.0
    rel = theta - ts
    if not inside.any():
        return float(ts - 0.9), float(ts + 0.9)
    return float(ts + rel[inside].min()), float(ts + rel[inside].max())


# ----------------------------------------------------------------------------------------------------
# scar: patchy mid-wall patches in tissue coordinates

FIELD_SHAPE = (72, 16)  # (angle, depth) grid of the random tissue fields: 5 degrees x 1/15 of the wall


def tissue_field(rng: np.random.Generator, sigma=(1.6, 1.2)) -> np.ndarray:
    """Smooth unit-variance Gaussian random field over (angle, wall depth), periodic in angle."""
    f = ndimage.gaussian_filter(rng.normal(size=FIELD_SHAPE), sigma=sigma, mode=("wrap", "nearest"))
    return (f - f.mean()) / (f.std() + 1e-12)


def sample_field(f: np.ndarray, theta: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Bilinear sample of a tissue field at pixel angles/depths."""
    ti = (np.mod(theta, TWO_PI) / TWO_PI) * FIELD_SHAPE[0]
    ri = np.clip(rho, 0.0, 1.0) * (FIELD_SHAPE[1] - 1)
    return ndimage.map_coordinates(f, [ti.ravel(), ri.ravel()], order=1, mode="grid-wrap").reshape(theta.shape)


@dataclass(frozen=True)
class ScarPatch:
    theta: float  # centre angle (rad)
    half_width: float  # angular half width (rad)
    rho: float  # centre depth (0 endo .. 1 epi)
    half_depth: float
    site: str  # "insertion" or "hypertrophy"


@dataclass
class ScarPlan:
    """Per-patient scar: which slices, which patches, and the patchy texture and relaxation increments."""

    slices: list[int]
    patches: dict[int, list[ScarPatch]]
    patchiness: dict[int, np.ndarray]  # tissue field deciding where inside the envelope scar is
    dt1_field: dict[int, np.ndarray]
    dt2_field: dict[int, np.ndarray]
    dt1: float  # patient's relative T1 increase in scar (0.10-0.25)
    dt2: float  # relative T2 increase (0.10-0.30)


def draw_scar(rng: np.random.Generator, anat: Anatomy, z_slices: np.ndarray) -> ScarPlan:
    """Scar on a contiguous run of 1-5 slices near the hypertrophy, at RV insertions and thick segments."""
    u = np.asarray(z_slices) / anat.length
    candidates = np.where((u >= 0.08) & (u <= 0.8))[0]
    if len(candidates) == 0:
        candidates = np.array([int(np.argmin(np.abs(u - 0.4)))])
    centre = int(candidates[np.argmin(np.abs(u[candidates] - np.clip(anat.hyp_u, 0.2, 0.7)))])
    n = int(min(len(candidates), rng.choice([1, 2, 2, 3, 3, 3, 4, 4, 5])))
    start = int(np.clip(centre - rng.integers(0, n), candidates.min(), candidates.max() - n + 1))
    slices = list(range(start, start + n))
    patches, patchy, f1, f2 = {}, {}, {}, {}
    for s in slices:
        ins = rv_insertion_angles(anat, float(z_slices[s]))
        plist = []
        for _ in range(int(rng.choice([1, 2, 2, 3]))):
            if rng.random() < 0.55:
                th = ins[int(rng.integers(0, 2))] + rng.normal(0.0, 0.12)
                site = "insertion"
            else:
                th = anat.hyp_theta + rng.normal(0.0, 0.5 * anat.hyp_width)
                site = "hypertrophy"
            plist.append(ScarPatch(float(wrap_angle(th)), float(rng.uniform(0.35, 0.9)),
                                   float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.3, 0.55)), site))
        patches[s] = plist
        patchy[s] = tissue_field(rng)
        f1[s] = tissue_field(rng)
        f2[s] = tissue_field(rng)
    return ScarPlan(slices, patches, patchy, f1, f2, float(rng.uniform(0.10, 0.25)), float(rng.uniform(0.10, 0.30)))


def scar_fraction(plan: ScarPlan, s: int, theta: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Scar volume fraction per pixel (0-1): envelope of the patches x a thresholded patchy field.

    The soft threshold leaves many pixels partly scarred (partial volume, interleaved fibrosis), so the
    scar is never one constant value.
    """
    env = np.zeros(theta.shape)
    for p in plan.patches.get(s, []):
        dth = np.abs(wrap_angle(theta - p.theta)) / p.half_width
        dr = np.abs(rho - p.rho) / p.half_depth
        e = np.cos(0.5 * np.pi * np.minimum(dth, 1.0)) ** 2 * np.cos(0.5 * np.pi * np.minimum(dr, 1.0)) ** 2
        env = np.maximum(env, e)
    if s not in plan.patchiness:
        return env
    patchy = np.clip(0.6 + 0.6 * sample_field(plan.patchiness[s], theta, rho), 0.0, 1.0)
    return np.clip(1.8 * env, 0.0, 1.0) * patchy
