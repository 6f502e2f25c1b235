"""``auto``: the prior each element gets is the one its own measurements support.

Composition TV (``composition-tv``) wins by several dB when the TXM image shows the particles an element map
is made of, in the patterns' frame; it loses badly when the TXM is a few pixels off, blurred, or of another
contrast, because it then paints the TXM's shapes into the map. The data can tell the two apart: the
cross-validation that chooses each model's weight predicts every measurement from fits that did not see it,
so both models' held-out residuals exist for the same measurements on the same folds. Per element:

1. plain TV (no TXM) is solved with its automatic weight; its maps give a TXM-free picture of the sample;
2. the TXM's offset from the patterns' frame is estimated by phase correlation of the TXM thickness with
   those maps (sub-pixel); beyond ``min_shift_px`` the TXM is shifted before it is used (reported);
3. the TXM's blur relative to those maps is estimated (the Gaussian that, applied to the maps, best explains
   the aligned TXM); a TXM that shows the same particles but ``max_blur_px`` or more blurrier is not used:
   composition TV then paints its soft edges into every map, and held-out measurements cannot see that
   (the speckle patterns do not resolve single-pixel edges: measured, composition TV predicted them better
   by up to 5 standard errors while its maps were 1-3 dB worse than plain TV's);
4. composition TV is solved with the TXM, on the same folds;
5. composition TV is taken only when it predicts held-out measurements significantly better than plain TV:
   the mean paired difference of squared (sigma-weighted, when uncertainties are given) held-out residuals
   must exceed ``se_factor`` standard errors, for the element itself, or for all elements pooled (one TXM:
   its alignment, blur and contrast are shared) while the element's own evidence is positive; otherwise the
   TXM-free map is returned and a warning says so.

The choice, the evidence (both models' held-out errors, the paired difference and its standard error) and
the estimated offset are reported in each element's ``solver_info`` (``prior``, ``model_choice``,
``txm_offset_px``, ``txm_blur_px``) and as warnings.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field
from scipy import ndimage

from .._errors import SolverError
from ..physics.forward import PatternPhysics
from .base import ProgressCallback, Solver, SolverParams, SolverResult
from .heldout import compare_heldout
from .joint_tv import JointTV
from .tv import TV, CompositionTV

__all__ = ["AutoPrior", "AutoPriorParams", "estimate_txm_offset", "estimate_txm_blur", "compare_heldout"]


class AutoPriorParams(SolverParams):
    weight: float | str = Field("auto", description="weight rule of both models (see 'tv'): 'auto', 'cv', "
                                                    "'discrepancy' need cross-validation for the model choice; "
                                                    "'auto' is the only rule that can choose")
    # 5, as plain `tv`: with 3 the TXM-free fallback lost up to 1.0 dB (mean 0.28) to TV-oracle, with 5 up to 0.8
    # (mean 0.20; 64x64 battery, graded and real-map cases at 10 %), at ~1.4x the time
    cv_folds: int = Field(5, ge=2, le=20, description="folds shared by both models (the same measurements held out)")
    se_factor: float = Field(2.0, ge=0, le=10, description="composition TV must beat plain TV on held-out "
                                                           "measurements by this many standard errors")
    align: bool = Field(True, description="estimate the TXM's offset from the patterns' frame and correct it")
    min_shift_px: float = Field(0.5, ge=0, description="offsets below this are left alone")
    max_shift_px: float = Field(8.0, gt=0, description="offsets beyond this are not trusted (ignored)")
    # measured (64x64 battery seeds 0-8 at 10 %, 0-2 at 5 and 25 %): sharp TXMs 0.25-1.0 px; blurred by sigma
    # 1 / 1.5 / 2 px (+ 7.5 % noise) 0.75-1.75 / 1.125-2.25 / 1.5-2.875, where composition TV lost up to 1.2 / 2.0 /
    # 4.6 dB to plain TV; graded 0.25-0.5; Zernike halos 0; the EELS maps' HAADF 1.125-1.375 (rejected at 5 and
    # 10 %, where composition TV gained 0.3-0.6 dB over plain TV): a wrong rejection costs a gain, a wrong
    # acceptance costs dB
    max_blur_px: float = Field(1.25, gt=0, description="a TXM this much blurrier (Gaussian sigma, px) than the "
                                                      "TXM-free maps is not used")
    txm_denoise: float = Field(1.0, ge=0, le=10, description="edge-preserving TV denoising of the TXM at this "
                                                             "multiple of its noise level before it is aligned, "
                                                             "assessed and used (see composition-tv); 0: off")
    seed: int = Field(0, description="seed of the fold assignment")


def _normalised(maps: list[np.ndarray]) -> np.ndarray:
    """The elements' maps summed on one scale (each over its own 99th percentile): where material is."""
    total = np.zeros_like(np.asarray(maps[0], dtype=np.float64))
    for x in maps:
        x = np.clip(np.asarray(x, dtype=np.float64), 0, None)
        ref = float(np.percentile(x, 99))
        if ref > 0:
            total += np.clip(x / ref, 0, 1.5)
    return total


def estimate_txm_offset(txm_thickness: np.ndarray, maps: list[np.ndarray], *, upsample: int = 20
                        ) -> tuple[np.ndarray, float]:
    """``(shift, error)``: the (dy, dx) shift that moves the TXM onto the TXM-free maps (sub-pixel phase
    correlation of their mean-removed images, lightly smoothed), and skimage's registration error (0: perfect
    match, 1: none)."""
    from skimage.registration import phase_cross_correlation

    reference = ndimage.gaussian_filter(_normalised(maps), 0.7)
    moving = ndimage.gaussian_filter(np.asarray(txm_thickness, dtype=np.float64), 0.7)
    reference = reference - reference.mean()
    moving = moving - moving.mean()
    if not reference.any() or not moving.any():
        return np.zeros(2), 1.0
    shift, error, _ = phase_cross_correlation(reference, moving, upsample_factor=upsample, normalization=None)
    return np.asarray(shift, dtype=np.float64), float(error)


#: blurs tried by :func:`estimate_txm_blur` (Gaussian sigma, px)
BLUR_GRID_PX = np.arange(0.0, 4.01, 0.125)
#: a TXM whose best blurred-map fit leaves more than this share of its variance unexplained shows other things
#: than the maps (another contrast, other particles): its blur means nothing and held-out data decide alone
#: (measured: 0.05-0.33 for TXMs of the mapped particles, sharp or blurred; 0.80-0.98 for a natural image or
#: a TXM of other species)
BLUR_FIT_MAX_UNEXPLAINED = 0.6


def estimate_txm_blur(txm_thickness: np.ndarray, maps: list[np.ndarray]) -> tuple[float, float]:
    """``(sigma, unexplained)``: the Gaussian blur (px) that, applied to the TXM-free maps, best explains the
    (aligned) TXM thickness up to scale and offset, and the share of the TXM's variance that fit leaves
    unexplained. TV maps are themselves soft and noisy, so a sharp TXM gives 0-1 px, not 0."""
    reference = _normalised(maps)
    target = np.asarray(txm_thickness, dtype=np.float64).ravel()
    spread = float(np.square(target - target.mean()).sum())
    if spread <= 0 or not reference.any():
        return 0.0, 1.0
    unexplained = []
    for sigma in BLUR_GRID_PX:
        blurred = ndimage.gaussian_filter(reference, sigma) if sigma > 0 else reference
        design = np.stack([blurred.ravel(), np.ones(target.size)], axis=1)
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        unexplained.append(float(np.square(target - design @ coef).sum()) / spread)
    best = int(np.argmin(unexplained))
    return float(BLUR_GRID_PX[best]), unexplained[best]


def _pooled_significance(evidence: list[dict[str, float]]) -> float:
    """The elements' paired gains summed, over their standard errors combined (independent counting noise)."""
    if not evidence:
        return float("-inf")
    gain = sum(ev["gain"] for ev in evidence)
    se = math.sqrt(sum(ev["standard_error"] ** 2 for ev in evidence))
    return gain / se if se > 0 else float("inf")


def _span(progress: ProgressCallback | None, lo: float, hi: float, label: str) -> ProgressCallback | None:
    if progress is None:
        return None
    return lambda f, text: progress(lo + (hi - lo) * f, f"{label}: {text}")


class AutoPrior(Solver):
    """Per element, composition TV with the (re-aligned) TXM when the held-out measurements support it,
    plain TV otherwise (see the module docstring)."""

    name = "auto"
    Params = AutoPriorParams
    uses_guide = True
    guide_required = False
    uses_sigma = True
    description = ("The default: per element, composition TV with the TXM re-aligned to the patterns when "
                   "held-out measurements say it predicts better than plain TV (standard-error rule), plain TV "
                   "otherwise; the choice and its evidence are reported.")

    def solve(self, y: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None,
              progress: ProgressCallback | None) -> SolverResult:
        return self.solve_many(np.asarray(y)[None], physics, guide=guide, progress=progress)[0]

    def _sub_params(self) -> dict[str, Any]:
        p = self.params
        return {"weight": p.weight, "cv_folds": p.cv_folds, "seed": p.seed}

    def solve_many(self, ys: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None,
                   progress: ProgressCallback | None, sigma: np.ndarray | None = None) -> list[SolverResult]:
        p = self.params
        ys = np.asarray(ys, dtype=np.float64)
        share = 0.45 if guide is not None else 1.0
        if guide is None:
            # no TXM: joint TV across elements, each element keeping plain TV where held-out data favour it
            found = JointTV({"weight": p.weight, "seed": p.seed}).solve_many(ys, physics, guide=None,
                                                                             progress=progress, sigma=sigma)
            for res in found:
                res.info.update(model_choice={"reason": "no TXM image"})
            return found
        # plain TV on composition TV's folds (the paired comparison needs the same held-out measurements) with
        # its iteration cap (200): measured the same maps as a cap of 400 (64x64 at 5-25 %) in less time
        plain = TV({**self._sub_params(), "cv_iterations": 200}).solve_many(
            ys, physics, guide=None, progress=_span(progress, 0.0, share, "plain TV"), sigma=sigma)
        from .txm_prior import denoise_txm, txm_thickness

        # denoised first: its noise would go into every composition map, and it blurs the blur estimate
        txm, noise = denoise_txm(np.asarray(guide, dtype=np.float64), p.txm_denoise)
        offset, error = estimate_txm_offset(txm_thickness(txm, floor=0.0), [r.x for r in plain])
        size = float(np.hypot(*offset))
        aligned = p.align and p.min_shift_px <= size <= p.max_shift_px
        # cubic: a linear shift by a fraction of a pixel blurs the particle edges composition TV relies on
        used = ndimage.shift(txm, offset, order=3, mode="nearest") if aligned else txm
        blur, unexplained = estimate_txm_blur(txm_thickness(used, floor=0.0), [r.x for r in plain])
        txm_note = {"txm_offset_px": [round(float(v), 3) for v in offset], "txm_registration_error": error,
                    "txm_realigned": aligned, "txm_blur_px": blur, "txm_blur_fit_unexplained": round(unexplained, 3),
                    "txm_noise": round(noise, 4), "txm_denoise": p.txm_denoise}
        if unexplained <= BLUR_FIT_MAX_UNEXPLAINED and blur >= p.max_blur_px:
            out = [self._blurred(res, blur, txm_note) for res in plain]
        else:
            guided = CompositionTV({**self._sub_params(), "txm_denoise": 0.0}).solve_many(
                ys, physics, guide=used, progress=_span(progress, share, 0.98, "composition TV"), sigma=sigma)
            evidence = [None if plain[e].heldout is None or guided[e].heldout is None else
                        compare_heldout(plain[e].heldout, guided[e].heldout, None if sigma is None else sigma[e])
                        for e in range(len(ys))]
            pooled = _pooled_significance([ev for ev in evidence if ev is not None])
            out = [self._choose(plain[e], guided[e], evidence[e], pooled, offset, aligned, txm_note)
                   for e in range(len(ys))]
        if progress:
            progress(1.0, "priors " + ", ".join(str(r.info["prior"]) for r in out))
        return out

    def _blurred(self, plain: SolverResult, blur: float, txm_note: dict[str, Any]) -> SolverResult:
        """The TXM-free map, with why the TXM was not used."""
        p = self.params
        warnings = [*plain.info.get("warnings", []),
                    f"TXM rejected: it is blurrier than the maps the measurements support (Gaussian sigma ~{blur:.2f} "
                    f"px >= {p.max_blur_px:g}); its soft edges would be painted into the map; the TXM-free plain "
                    f"TV map is returned"]
        plain.info.update(prior="tv", model_choice={"reason": f"TXM blurred by ~{blur:.2f} px relative to the "
                                                              f"TXM-free maps (limit {p.max_blur_px:g} px)",
                                                    "max_blur_px": p.max_blur_px},
                          warnings=warnings, **txm_note)
        return plain

    def _choose(self, plain: SolverResult, guided: SolverResult, evidence: dict[str, float] | None,
                pooled: float, offset: np.ndarray, aligned: bool, txm_note: dict[str, Any]) -> SolverResult:
        p = self.params
        if evidence is None:
            if isinstance(p.weight, str):
                raise SolverError("the model choice needs both models' held-out residuals (cross-validation)")
            # a fixed weight chooses nothing: the TXM-based model, as before this method existed
            guided.info.update(prior="composition-tv", model_choice={"reason": "fixed weight: no choice"},
                               **txm_note)
            return guided
        own = evidence["significance"]
        # the element's own evidence suffices; or the TXM is supported by all elements together (it is one
        # image: its alignment, blur and contrast are shared) and this element's evidence does not contradict it
        take_guided = own >= p.se_factor or (pooled >= p.se_factor and own > 0)
        evidence = {**evidence, "pooled_significance": pooled}
        chosen, other = (guided, plain) if take_guided else (plain, guided)
        warnings: list[str] = list(chosen.info.get("warnings", []))
        if not take_guided:
            warnings.append(f"TXM rejected: composition TV predicted held-out measurements "
                            f"{'worse than' if evidence['gain'] <= 0 else 'not significantly better than'} plain TV "
                            f"({own:+.1f} standard errors, all elements {pooled:+.1f}; {p.se_factor:g} needed); the "
                            f"TXM-free plain TV map is returned")
        elif aligned:
            warnings.append(f"TXM re-aligned by ({offset[0]:+.2f}, {offset[1]:+.2f}) px (dy, dx) to the patterns' "
                            f"frame before use")
        chosen.info.update(
            prior="composition-tv" if take_guided else "tv",
            model_choice={**evidence, "se_factor": p.se_factor, "folds": p.cv_folds,
                          "other": {"weight": other.info.get("weight"),
                                    "cross_validation": other.info.get("cross_validation")},
                          "reason": ("held-out measurements favour the TXM-based model" if take_guided else
                                     "the TXM-based model does not predict held-out measurements significantly "
                                     "better")},
            warnings=warnings, **txm_note)
        return chosen
