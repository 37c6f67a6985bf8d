"""A nanocrystal mesocrystal film for nano-diffraction raster scans and X-ray cross-correlation
analysis (XCCA).

Rock-salt nanocrystals (PbS) pack into a body-centred tetragonal superlattice (SL); a small beam
rasters the film and one WAXS detector records at once the SL reflections at small angle and the
atomic-lattice (AL) 111 and 200 reflections. The film normal is [110] for both lattices and the
beam runs along it, so the detector sees the reflections of the [110] zone. The in-plane [001]
axis of each lattice lies at the azimuth omega (pyFAI's chi, degrees):

- AL 111 (1,-1,+-1), (-1,1,+-1): omega_AL +- (90 - theta) and omega_AL + 180 +- (90 - theta),
  theta = 35.26 deg (the angle between [1-11] and [1-10]); AL 200 (0,0,+-2): omega_AL, + 180.
- SL (1,-1,0): omega_SL + 90, + 270; (0,0,2): omega_SL, + 180; (1,-1,+-2): omega_SL +- beta and
  omega_SL + 180 +- beta, tan(beta) = c / (a sqrt 2).

The film is a Voronoi tessellation of Poisson seeds (one domain per ``domain_area_um2``); each
domain has its own omega_SL (uniform in [0, 180)) and SL-AL misorientation psi = omega_AL -
omega_SL ~ N(psi_mean_deg, psi_sd_deg), or is a hole (``empty_fraction``). Within ``border_um / 2``
of a domain boundary the packing is disordered: no SL or AL spots, only the isotropic AL powder
ring and the diffuse scattering. Whether the AL spots of a position meet the Bragg condition
(``al_visible_fraction``) and each spot's +-``spot_height_variation`` are drawn from a hash of the
position (rounded to 1 nm) and the seed: the same position gives the same answer.

The cross-correlation of the AL 111 and SL (1,-1,2) rings, averaged over grains, peaks at
Delta = +-(90 +- theta +- beta) (``truth()["ccf_peaks_deg"]``, for psi = 0).

EXAMPLE::

    import numpy as np
    from trxrd.simulated_devices.physics import load_config
    from trxrd.simulated_devices.physics.detector import DetectorGeometry
    from trxrd.simulated_devices.physics.mesocrystal import MesocrystalModel
    cfg = load_config("pbs-mesocrystal")
    meso = MesocrystalModel(cfg["mesocrystal"], cfg["sample"])
    meso.truth()["ccf_peaks_deg"]            # [-166.0, -95.5, -84.5, -14.0, 14.0, 84.5, 95.5, 166.0]
    meso.truth_at(1.0, 1.0)                  # {"has_grain": True, "grain": 28, "orientation_deg": 49.2, ...}
    w = cfg["waxs"]
    geo = DetectorGeometry(w["detector"], w["distance_mm"], w["poni1_mm"], w["poni2_mm"], 11.7)
    pixels = meso.prepare(geo.q, np.degrees(geo.ai.center_array(unit="chi_rad")))
    img = meso.expected_image(1.0, 1.0, pixels)    # counts/s/pixel, before solid angle
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

THETA_DEG = math.degrees(math.atan(1.0 / math.sqrt(2.0)))   # 35.26: [1-11] from [1-10]
RING_SIGMAS = 4.0                 # a ring's spots are evaluated within this many radial sigmas
POSITION_STEP_UM = 1e-3           # positions closer than 1 nm are the same position
SMALL_ANGLE_Q_REF_INV_ANGSTROM = 0.1     # small_angle_counts_per_s is given at this q
SMALL_ANGLE_Q_FLOOR_INV_ANGSTROM = 0.02  # the q^-2 tail is evaluated no closer to q = 0 than this
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
NEIGHBOURS = 4                    # seeds searched for the distance to the domain boundary
RINGS = ("al_111", "al_200", "sl_110", "sl_002", "sl_112")


@dataclass(frozen=True)
class Spot:
    """One reflection on the detector: a Gaussian in (q, azimuth)."""

    ring: str
    q_inv_angstrom: float
    azimuth_deg: float               # pyFAI chi, in (-180, 180]
    height_counts_per_s: float       # peak counts/s/pixel at nominal flux, before solid angle
    fwhm_q_inv_angstrom: float
    fwhm_azimuth_deg: float


@dataclass
class MesocrystalPixels:
    """Per-pixel q and azimuth of one detector, precomputed for ``expected_image``: for each ring
    the flat indices of the pixels within RING_SIGMAS radial sigmas, their radial Gaussian and
    azimuth, and the position-independent images (air; film = air + small-angle tail + powder)."""

    shape: tuple
    air: np.ndarray
    film: np.ndarray
    ring_index: dict
    ring_radial: dict
    ring_azimuth_deg: dict


def wrap_deg(angle_deg):
    """Angles wrapped to (-180, 180]."""
    return 180.0 - np.remainder(180.0 - np.asarray(angle_deg), 360.0)


def _unit_hash(*parts) -> float:
    """A number in [0, 1) that depends only on *parts* (stable across processes)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0 ** 64


class MesocrystalModel:
    """Grain map, truth and WAXS intensity of a nanocrystal mesocrystal film ([mesocrystal] of
    the sample file; AL lattice, Scherrer size and shape factor from [sample])."""

    def __init__(self, cfg_mesocrystal: dict, sample_cfg: dict):
        from scipy.spatial import cKDTree

        self.cfg = cfg = cfg_mesocrystal
        self.al_a_angstrom = float(sample_cfg["a_angstrom"])
        self.sl_a_angstrom = float(cfg["sl_a_angstrom"])
        self.sl_c_angstrom = self.sl_a_angstrom * cfg["sl_c_over_a"]
        self.beta_deg = math.degrees(math.atan(cfg["sl_c_over_a"] / math.sqrt(2.0)))
        a, c, a_al = self.sl_a_angstrom, self.sl_c_angstrom, self.al_a_angstrom
        self.q = {"al_111": 2 * math.pi * math.sqrt(3.0) / a_al,
                  "al_200": 4 * math.pi / a_al,
                  "sl_110": 2 * math.pi * math.sqrt(2.0) / a,
                  "sl_002": 4 * math.pi / c,
                  "sl_112": 2 * math.pi * math.sqrt(2.0 / a ** 2 + 4.0 / c ** 2)}
        al_fwhm_q = 2 * math.pi * sample_cfg["scherrer_k"] / (sample_cfg["size_nm"] * 10.0)
        self.fwhm_q = {"al_111": al_fwhm_q, "al_200": al_fwhm_q,
                       **{r: cfg["sl_radial_fwhm_inv_angstrom"] for r in ("sl_110", "sl_002", "sl_112")}}
        self.fwhm_azimuth_deg = {
            **{r: math.hypot(math.degrees(al_fwhm_q / self.q[r]), cfg["disorder_fwhm_deg"])
               for r in ("al_111", "al_200")},
            **{r: cfg["sl_azimuthal_fwhm_deg"] for r in ("sl_110", "sl_002", "sl_112")}}
        al_off, b = 90.0 - THETA_DEG, self.beta_deg
        self.offsets_deg = {"al_111": (al_off, -al_off, 180.0 + al_off, 180.0 - al_off),
                            "al_200": (0.0, 180.0),
                            "sl_110": (90.0, 270.0),
                            "sl_002": (0.0, 180.0),
                            "sl_112": (b, -b, 180.0 + b, 180.0 - b)}
        self.height = {"al_111": cfg["al_counts_per_s"],
                       "al_200": cfg["al_counts_per_s"] * cfg["al_200_relative"],
                       "sl_110": cfg["sl_counts_per_s"] * cfg["sl_110_relative"],
                       "sl_002": cfg["sl_counts_per_s"] * cfg["sl_002_relative"],
                       "sl_112": cfg["sl_counts_per_s"]}
        self._draw_grains()
        self._tree = cKDTree(self.seeds_um)

    # ---- grain map ---------------------------------------------------------------------
    def _draw_grains(self) -> None:
        """Poisson seeds over the extent widened by three domain diameters (domains at the film's
        edge are cut, not squeezed), each with omega_SL, psi and empty drawn from grain_seed."""
        cfg = self.cfg
        x0, x1, y0, y1 = cfg["extent_um"]
        pad = 3.0 * math.sqrt(cfg["domain_area_um2"])
        box = (x0 - pad, x1 + pad, y0 - pad, y1 + pad)
        rng = np.random.default_rng(cfg["grain_seed"])
        n = max(1, int(rng.poisson((box[1] - box[0]) * (box[3] - box[2]) / cfg["domain_area_um2"])))
        self.seeds_um = np.column_stack([rng.uniform(box[0], box[1], n), rng.uniform(box[2], box[3], n)])
        self.orientation_deg = rng.uniform(0.0, 180.0, n)
        self.psi_deg = rng.normal(cfg["psi_mean_deg"], cfg["psi_sd_deg"], n)
        self.empty = rng.random(n) < cfg["empty_fraction"]

    def domain_map(self, x_um, y_um) -> dict:
        """Vectorised grain map at positions (um): ``domain`` (id, -1 off the film), ``on_film``
        (inside the extent), ``empty`` (a hole), ``border`` (within border_um / 2 of a domain
        boundary, film there) and ``has_grain`` (SL spots: on the film, not empty, not border)."""
        x = np.atleast_1d(np.asarray(x_um, dtype=float))
        y = np.atleast_1d(np.asarray(y_um, dtype=float))
        x, y = np.broadcast_arrays(x, y)
        x0, x1, y0, y1 = self.cfg["extent_um"]
        pts = np.column_stack([x.ravel(), y.ravel()])
        k = min(NEIGHBOURS, len(self.seeds_um))
        dist, idx = self._tree.query(pts, k=k)
        dist, idx = dist.reshape(len(pts), k), idx.reshape(len(pts), k)
        nearest = idx[:, 0]
        if k > 1:   # distance to the bisector with each neighbour: (dj^2 - d1^2) / (2 |s1 - sj|)
            sep = np.linalg.norm(self.seeds_um[idx[:, 1:]] - self.seeds_um[nearest][:, None, :], axis=2)
            to_edge = ((dist[:, 1:] ** 2 - dist[:, :1] ** 2) / (2.0 * sep)).min(axis=1)
        else:
            to_edge = np.full(len(pts), np.inf)
        on_film = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
        empty = on_film & self.empty[nearest]
        border = on_film & ~empty & (to_edge < 0.5 * self.cfg["border_um"])
        out = {"domain": np.where(on_film, nearest, -1), "on_film": on_film, "empty": empty,
               "border": border, "has_grain": on_film & ~empty & ~border}
        return {key: v.reshape(x.shape) for key, v in out.items()}

    @staticmethod
    def position_key(x_um: float, y_um: float) -> tuple[int, int]:
        """The grid position (1 nm steps) that names *x_um*, *y_um*: 1.2000001 is 1.2."""
        return round(float(x_um) / POSITION_STEP_UM), round(float(y_um) / POSITION_STEP_UM)

    def _position_draw(self, key: tuple[int, int], what: str) -> float:
        return _unit_hash(self.cfg["grain_seed"], key[0], key[1], what)

    def truth_at(self, x_um: float, y_um: float) -> dict:
        """What the beam sees at (*x_um*, *y_um*): ``has_grain`` (SL spots), ``grain`` (its domain
        id, else None), ``domain`` (the domain under the beam, also a hole or a border; None off
        the film), ``orientation_deg`` (omega_SL mod 180), ``al_orientation_deg`` (omega_AL mod
        180), ``psi_deg``, ``al_visible`` (AL spots present), ``border``, ``empty``, ``on_film``."""
        m = {k: v.item() for k, v in self.domain_map(x_um, y_um).items()}
        d = int(m["domain"])
        has = bool(m["has_grain"])
        al_visible = has and self._position_draw(self.position_key(x_um, y_um), "al") < self.cfg["al_visible_fraction"]
        return {"has_grain": has, "grain": d if has else None,
                "domain": d if m["on_film"] else None,
                "orientation_deg": float(self.orientation_deg[d] % 180.0) if has else None,
                "al_orientation_deg": float((self.orientation_deg[d] + self.psi_deg[d]) % 180.0) if has else None,
                "psi_deg": float(self.psi_deg[d]) if has else None,
                "al_visible": bool(al_visible), "border": bool(m["border"]), "empty": bool(m["empty"]),
                "on_film": bool(m["on_film"])}

    def ccf_peaks_deg(self) -> list[float]:
        """The 8 peaks of the AL 111 x SL (1,-1,2) cross-correlation, +-(90 +- theta +- beta), in
        (-180, 180] and sorted (psi = 0; at c/a = 1, beta = theta and two pairs coincide)."""
        return sorted(float(wrap_deg(s * (90.0 + t * THETA_DEG + b * self.beta_deg)))
                      for s in (1, -1) for t in (1, -1) for b in (1, -1))

    def truth(self) -> dict:
        """The lattices, rings, widths, expected CCF peaks and every grain (JSON-serialisable)."""
        cfg = self.cfg
        grains = [{"id": i, "x_um": float(sx), "y_um": float(sy),
                   "orientation_deg": float(self.orientation_deg[i]),
                   "al_orientation_deg": float((self.orientation_deg[i] + self.psi_deg[i]) % 180.0),
                   "psi_deg": float(self.psi_deg[i]), "empty": bool(self.empty[i])}
                  for i, (sx, sy) in enumerate(self.seeds_um)]
        return {
            "al_a_angstrom": self.al_a_angstrom,
            "sl_a_angstrom": self.sl_a_angstrom, "sl_c_angstrom": self.sl_c_angstrom,
            "sl_c_over_a": float(cfg["sl_c_over_a"]),
            "beta_deg": self.beta_deg, "theta_deg": THETA_DEG,
            "ccf_peaks_deg": self.ccf_peaks_deg(),
            "q_inv_angstrom": dict(self.q),
            "radial_fwhm_inv_angstrom": dict(self.fwhm_q),
            "azimuthal_fwhm_deg": dict(self.fwhm_azimuth_deg),
            "spot_offsets_deg": {r: list(v) for r, v in self.offsets_deg.items()},
            "disorder_fwhm_deg": float(cfg["disorder_fwhm_deg"]),
            "psi_mean_deg": float(cfg["psi_mean_deg"]), "psi_sd_deg": float(cfg["psi_sd_deg"]),
            "al_visible_fraction": float(cfg["al_visible_fraction"]),
            "empty_fraction": float(cfg["empty_fraction"]),
            "domain_area_um2": float(cfg["domain_area_um2"]), "border_um": float(cfg["border_um"]),
            "extent_um": [float(v) for v in cfg["extent_um"]],
            "grains": grains,
        }

    # ---- intensity ---------------------------------------------------------------------
    def spots_at(self, x_um: float, y_um: float) -> list[Spot]:
        """The SL and (when visible) AL spots at a position, heights varied per position."""
        t = self.truth_at(x_um, y_um)
        if not t["has_grain"]:
            return []
        key = self.position_key(x_um, y_um)
        d = t["grain"]
        omega = {"sl": float(self.orientation_deg[d]), "al": float(self.orientation_deg[d] + self.psi_deg[d])}
        var = self.cfg["spot_height_variation"]
        spots = []
        for ring in RINGS:
            lattice = ring[:2]
            if lattice == "al" and not t["al_visible"]:
                continue
            for k, off in enumerate(self.offsets_deg[ring]):
                factor = 1.0 + var * (2.0 * self._position_draw(key, f"{ring}:{k}") - 1.0)
                spots.append(Spot(ring, self.q[ring], float(wrap_deg(omega[lattice] + off)),
                                  self.height[ring] * factor, self.fwhm_q[ring], self.fwhm_azimuth_deg[ring]))
        return spots

    def powder_profile(self, q_inv_angstrom: np.ndarray) -> np.ndarray:
        """Isotropic AL 111 + 200 powder rings (counts/s/pixel) of the disordered nanocrystals."""
        q = np.asarray(q_inv_angstrom, dtype=float)
        out = np.zeros_like(q)
        for ring, rel in (("al_111", 1.0), ("al_200", self.cfg["al_200_relative"])):
            sigma = self.fwhm_q[ring] / FWHM_PER_SIGMA
            out += self.cfg["al_powder_counts_per_s"] * rel * np.exp(-0.5 * ((q - self.q[ring]) / sigma) ** 2)
        return out

    def diffuse_profile(self, q_inv_angstrom: np.ndarray, film: bool) -> np.ndarray:
        """Flat background (air, windows) plus, on the film, the q^-2 small-angle tail of the
        nanocrystals (counts/s/pixel)."""
        q = np.asarray(q_inv_angstrom, dtype=float)
        out = np.full_like(q, self.cfg["background_counts_per_s"])
        if film:
            q_eff = np.maximum(q, SMALL_ANGLE_Q_FLOOR_INV_ANGSTROM)
            out += self.cfg["small_angle_counts_per_s"] * (SMALL_ANGLE_Q_REF_INV_ANGSTROM / q_eff) ** 2
        return out

    def prepare(self, q_inv_angstrom: np.ndarray, azimuth_deg: np.ndarray) -> MesocrystalPixels:
        """Precompute, for pixels of q (A^-1) and azimuth (pyFAI chi, deg), what every position
        shares: the static images and each ring's pixel band."""
        q = np.asarray(q_inv_angstrom, dtype=float)
        chi = np.asarray(azimuth_deg, dtype=float).ravel()
        air = self.diffuse_profile(q, film=False).astype(np.float32)
        film = (self.diffuse_profile(q, film=True) + self.powder_profile(q)).astype(np.float32)
        qf = q.ravel()
        index, radial, azim = {}, {}, {}
        for ring in RINGS:
            sigma = self.fwhm_q[ring] / FWHM_PER_SIGMA
            idx = np.flatnonzero(np.abs(qf - self.q[ring]) < RING_SIGMAS * sigma)
            index[ring] = idx
            radial[ring] = np.exp(-0.5 * ((qf[idx] - self.q[ring]) / sigma) ** 2).astype(np.float32)
            azim[ring] = chi[idx].astype(np.float32)
        return MesocrystalPixels(q.shape, air, film, index, radial, azim)

    def expected_image(self, x_um: float, y_um: float, pixels: MesocrystalPixels) -> np.ndarray:
        """Noiseless counts/s/pixel at nominal flux at (*x_um*, *y_um*), before solid angle and
        polarisation: diffuse + powder on the film, air elsewhere, plus the spots."""
        t = self.truth_at(x_um, y_um)
        on_film = t["on_film"] and not t["empty"]
        img = (pixels.film if on_film else pixels.air).copy()
        flat = img.reshape(-1)
        by_ring: dict[str, list[Spot]] = {}
        for spot in self.spots_at(x_um, y_um):
            by_ring.setdefault(spot.ring, []).append(spot)
        for ring, spots in by_ring.items():
            chi = pixels.ring_azimuth_deg[ring]
            acc = np.zeros_like(chi)
            for s in spots:
                d = np.remainder(chi - np.float32(s.azimuth_deg - 180.0), np.float32(360.0)) - np.float32(180.0)
                d *= np.float32(FWHM_PER_SIGMA / s.fwhm_azimuth_deg)
                acc += np.float32(s.height_counts_per_s) * np.exp(np.float32(-0.5) * d * d)
            flat[pixels.ring_index[ring]] += pixels.ring_radial[ring] * acc
        return img

    def intensity(self, x_um: float, y_um: float, q_inv_angstrom: np.ndarray,
                  azimuth_deg: np.ndarray) -> np.ndarray:
        """``expected_image`` for arbitrary (q, azimuth) arrays (prepares them on the way)."""
        return self.expected_image(x_um, y_um, self.prepare(q_inv_angstrom, azimuth_deg))
