"""SIREN reconstruction: the paper's generative method, and our fast TXM-aware configuration of it.

A sine-activated MLP f maps pixel coordinates z to element values, trained per dataset with Adam on
``mean (A f(z) - y)^2 + lambda * mean |grad f(z) - grad I_TXM|``. Everything the paper hand-tuned is
made scale-free here: A is divided by its mean times the pixel count and each element's y by its
least-squares constant level, so f is ~1 inside the sample at any count level or pattern scale and the
paper's "multiply y by 8" is not needed; lambda and the learning rate then mean the same on every dataset.

Two registered methods share this code:

- ``siren-paper``: the published configuration (width 1024, 5 sine layers, omega 30, lambda 1e-5,
  Adam 5e-6, 20 000 full-batch steps, the lowest-loss iterate of the last 50). ~1-3 s per step on 2 CPU
  cores at 80x80: it needs a GPU (``device="cuda"``) or a stated step budget.
- ``siren``: fast and without ground truth. The network predicts the *composition* (element / TXM
  thickness, see ``txm_prior``) when a TXM image exists, all elements in one network (E outputs),
  warm-started from composition-TV; a held-out 10 % of the patterns chooses lambda and when to stop.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from .._errors import SolverError
from ..physics.forward import PatternPhysics, single_threaded_blas
from .siren_net import SirenNet, pixel_coordinates
from .base import ProgressCallback, Solver, SolverParams, SolverResult
from .tv import CompositionTV, GuidedTV, TV, map_scale
from .txm_prior import txm_gradient, txm_thickness

__all__ = ["Siren", "SirenParams", "SirenPaper", "SirenPaperParams", "MIN_PATTERNS_SIREN"]

#: below this many patterns a held-out split (and the data term) means nothing
MIN_PATTERNS_SIREN = 8


class SirenParams(SolverParams):
    width: int = Field(64, ge=4, le=4096, description="hidden width of the sine layers")
    depth: int = Field(3, ge=1, le=16, description="number of sine layers")
    omega_0: float = Field(30.0, gt=0, description="frequency of the first sine layer")
    omega_hidden: float = Field(30.0, gt=0, description="frequency of the hidden sine layers")
    fourier_features: int = Field(0, ge=0, le=4096, description="Fourier-feature encoding size (0 = raw coordinates)")
    fourier_scale: float = Field(10.0, gt=0, description="std of the Fourier-feature frequencies (cycles per field)")
    output: Literal["auto", "map", "composition"] = Field(
        "auto", description="'map': f is the element map; 'composition': f x TXM thickness is the map "
                            "(uses the TXM's particle shapes, cannot paint TXM-only particles); 'auto': "
                            "composition when a TXM image exists")
    txm_prior: bool = Field(True, description="add the paper's lambda * |grad f - grad I_TXM|_1 term "
                                              "(ignored without a TXM image)")
    lam: float | Literal["auto"] = Field(
        "auto", description="weight of the TXM gradient term; 'auto' = the candidate with the lowest "
                            "held-out data error")
    lam_candidates: tuple[float, ...] = Field((0.0, 1e-3), min_length=1,
                                              description="lambdas compared when lam='auto'")
    txm_threshold: float = Field(0.0, ge=0, lt=1, description="zero TXM gradients below this fraction of the "
                                                              "largest (noise suppression)")
    lr: float = Field(1e-4, gt=0, lt=1, description="Adam learning rate")
    precondition: bool = Field(True, description="whiten the data term with (A A^T + eps)^-1/2: the same "
                                                 "minimiser, far better conditioned for Adam (no effect on "
                                                 "the held-out score, which stays in measurement space)")
    precondition_eps: float = Field(1e-3, gt=0, lt=1, description="eps relative to the largest eigenvalue of A A^T")
    steps: int = Field(300, ge=1, le=1_000_000, description="full-batch Adam steps (upper bound with holdout)")
    holdout: float = Field(0.1, ge=0, lt=0.5, description="fraction of patterns held out to choose lambda and "
                                                         "the stopping step (0 = keep the lowest training loss "
                                                         "of the last keep_last steps, as the paper)")
    patience: int = Field(150, ge=1, description="stop when the held-out error has not improved for this many steps")
    eval_every: int = Field(5, ge=1, description="steps between held-out evaluations")
    keep_last: int = Field(50, ge=1, description="without holdout: best of the last this many iterates")
    joint: bool = Field(True, description="one network with one output per element (False: one network each)")
    warm_start: Literal["none", "tv", "guided-tv", "composition-tv"] = Field(
        "composition-tv", description="fit the network to this method's solution first ('composition-tv' "
                                      "falls back to 'tv' without a TXM image)")
    warm_steps: int = Field(500, ge=0, description="Adam steps fitting the warm start")
    warm_params: dict[str, Any] = Field(
        default_factory=lambda: {"weight": 2e-4},
        description="parameters of the warm-start method (default: a fixed relative weight, the median best "
                    "weight of composition TV on our benchmark cases; the held-out patterns then choose lambda "
                    "and the stopping step; {} = the method's own cross-validated weight, slower)")
    seed: int = Field(0, description="network initialisation and holdout split")
    mixed_precision: bool = Field(True, description="bfloat16 autocast of the network on CUDA (ignored on CPU)")

    @field_validator("lam")
    @classmethod
    def _nonneg_lam(cls, v: float | str) -> float | str:
        if not isinstance(v, str) and not v >= 0:
            raise ValueError("lam must be >= 0 or 'auto'")
        return v


class SirenPaperParams(SirenParams):
    """The published reference configuration (see the module docstring)."""

    width: int = Field(1024, ge=4, le=4096, description="hidden width of the sine layers")
    depth: int = Field(5, ge=1, le=16, description="number of sine layers")
    output: Literal["auto", "map", "composition"] = Field("map", description=SirenParams.model_fields["output"].description)
    lam: float | Literal["auto"] = Field(1e-5, description=SirenParams.model_fields["lam"].description)
    lr: float = Field(5e-6, gt=0, lt=1, description="Adam learning rate")
    precondition: bool = Field(False, description=SirenParams.model_fields["precondition"].description)
    steps: int = Field(20_000, ge=1, le=1_000_000, description="full-batch Adam steps")
    holdout: float = Field(0.0, ge=0, lt=0.5, description=SirenParams.model_fields["holdout"].description)
    joint: bool = Field(False, description=SirenParams.model_fields["joint"].description)
    warm_start: Literal["none", "tv", "guided-tv", "composition-tv"] = Field(
        "none", description=SirenParams.model_fields["warm_start"].description)
    mixed_precision: bool = Field(False, description=SirenParams.model_fields["mixed_precision"].description)


def _report_every(steps: int) -> int:
    """Steps between progress reports: every step of a short run, every 20th of a long one (a report
    syncs the device), so the fraction tracks steps done / total within 5 %."""
    return max(1, min(20, steps // 20))


class _Track:
    """One fit's progress as a fraction of ``span`` of the caller's: the warm-start solve (when there is one)
    takes the first ``WARM_SOLVE_SHARE`` of it, then every Adam step (warm-start fit and training, all
    lambdas) one equal unit. Measured at 48x48: the warm-start solve ~2 % of the time, warm-fit and training
    steps cost about the same. A run stopped early by its held-out error jumps to the end of its block."""

    WARM_SOLVE_SHARE = 0.05

    def __init__(self, progress: ProgressCallback | None, span: tuple[float, float], prefix: str = "") -> None:
        self.progress, self.span, self.prefix = progress, span, prefix
        self.solve_share, self.units = 0.0, 1
        self.last = span[0]

    @property
    def active(self) -> bool:
        return self.progress is not None

    def plan(self, *, warm_solve: bool, units: int) -> None:
        self.solve_share, self.units = (self.WARM_SOLVE_SHARE if warm_solve else 0.0), max(1, units)

    def _report(self, share: float, text: str) -> None:
        if self.progress is None:
            return
        lo, hi = self.span
        self.last = max(self.last, lo + (hi - lo) * min(max(share, 0.0), 1.0))  # never backwards
        self.progress(self.last, self.prefix + text)

    def warm_solve(self, method: str) -> ProgressCallback | None:
        """The warm-start solver's own progress, squeezed into its share."""
        if self.progress is None:
            return None
        return lambda f, t: self._report(self.solve_share * f, f"warm start ({method}): {t}")

    def at(self, unit: int, text: str) -> None:
        self._report(self.solve_share + (1.0 - self.solve_share) * unit / self.units, text)

    def done(self, text: str) -> None:
        self._report(1.0, text)


class _Problem:
    """The normalised, device-resident problem one training run sees (all elements at once)."""

    def __init__(self, ys: np.ndarray, physics: PatternPhysics, guide: np.ndarray | None, p: SirenParams,
                 device: torch.device) -> None:
        a64 = physics.numpy_matrix().astype(np.float64)
        n, m = a64.shape
        self.shape = physics.img_shape
        self.pattern_scale = float(a64.mean()) * m
        if not np.isfinite(self.pattern_scale) or self.pattern_scale <= 0:
            raise SolverError("patterns must have a positive mean intensity")
        self.levels = np.array([map_scale(a64, y) for y in ys])  # element units per normalised unit
        a_norm = a64 / self.pattern_scale
        self.a = torch.as_tensor(a_norm, dtype=torch.float32, device=device)
        self.y = torch.as_tensor(ys / (self.levels[:, None] * self.pattern_scale), dtype=torch.float32, device=device)
        rng = np.random.default_rng(p.seed)
        held = np.zeros(n, dtype=bool)
        if p.holdout > 0:
            held[rng.choice(n, size=max(1, int(round(p.holdout * n))), replace=False)] = True
        self.train = torch.as_tensor(~held, device=device)
        self.val = torch.as_tensor(held, device=device) if held.any() else None
        # the training residual: rows of the training set, optionally whitened
        a_tr = a_norm[~held]
        self.whiten = None
        if p.precondition:
            evals, evecs = np.linalg.eigh(a_tr @ a_tr.T)
            evals = np.clip(evals, 0.0, None)
            w = evecs @ np.diag(np.sqrt(evals.mean() / (evals + p.precondition_eps * evals.max()))) @ evecs.T
            self.whiten = torch.as_tensor(w, dtype=torch.float32, device=device)
        self.composition = p.output == "composition" or (p.output == "auto" and guide is not None)
        if self.composition and guide is None:
            raise SolverError("output='composition' needs a TXM image ('txm' in the dataset)")
        self.modulation = (torch.as_tensor(txm_thickness(guide).reshape(-1), dtype=torch.float32, device=device)
                           if self.composition else None)
        self.grad_txm = None
        if guide is not None and p.txm_prior:
            gy, gx = txm_gradient(guide, threshold=p.txm_threshold)
            self.grad_txm = (torch.as_tensor(gy, dtype=torch.float32, device=device),
                             torch.as_tensor(gx, dtype=torch.float32, device=device))

    def maps(self, f: torch.Tensor) -> torch.Tensor:
        """Network output (M, E) -> normalised maps (E, M)."""
        x = f.t()
        return x * self.modulation if self.modulation is not None else x

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.a.t() - self.y

    def train_error(self, r: torch.Tensor) -> torch.Tensor:
        """Mean squared (whitened, if preconditioned) residual over the training rows."""
        rt = r[:, self.train]
        if self.whiten is not None:
            rt = rt @ self.whiten
        return (rt ** 2).mean()

    def prior(self, x: torch.Tensor) -> torch.Tensor:
        """Mean |grad x - grad I_TXM| over pixels and elements (forward differences, last row/col 0)."""
        assert self.grad_txm is not None
        img = x.reshape(x.shape[0], *self.shape)
        gy = torch.zeros_like(img)
        gx = torch.zeros_like(img)
        gy[:, :-1, :] = img[:, 1:, :] - img[:, :-1, :]
        gx[:, :, :-1] = img[:, :, 1:] - img[:, :, :-1]
        return (gy - self.grad_txm[0]).abs().mean() + (gx - self.grad_txm[1]).abs().mean()


class Siren(Solver):
    """SIREN implicit neural representation trained on one dataset (see module docstring)."""

    name = "siren"
    Params = SirenParams
    uses_guide = True
    guide_required = False
    description = ("SIREN network x = f(coords) trained on the data (+ TXM gradient prior); fast configuration: "
                   "composition output, joint elements, composition-TV warm start, held-out stopping.")

    # -- solver interface ------------------------------------------------------------------
    def solve(self, y: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None,
              progress: ProgressCallback | None) -> SolverResult:
        return self.solve_many(y[None, :], physics, guide=guide, progress=progress)[0]

    def solve_many(self, ys: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None,
                   progress: ProgressCallback | None) -> list[SolverResult]:
        """All elements of ``ys`` (E, N): one network with E outputs (``joint``) or one per element."""
        ys = np.atleast_2d(np.asarray(ys, dtype=np.float64))
        if physics.num_patterns < MIN_PATTERNS_SIREN:
            raise SolverError(f"too few patterns for SIREN: {physics.num_patterns} (need at least "
                              f"{MIN_PATTERNS_SIREN})")
        with single_threaded_blas():
            if self.params.joint or ys.shape[0] == 1:
                return self._fit(ys, physics, guide, _Track(progress, (0.0, 1.0)))
            out: list[SolverResult] = []
            e = ys.shape[0]
            for k in range(e):
                out += self._fit(ys[k:k + 1], physics, guide,
                                 _Track(progress, (k / e, (k + 1) / e), f"element {k + 1}/{e}, "))
            return out

    # -- one training (one or all elements) --------------------------------------------------
    def _fit(self, ys: np.ndarray, physics: PatternPhysics, guide: np.ndarray | None,
             track: _Track) -> list[SolverResult]:
        t0 = time.perf_counter()
        p = self.params
        device = physics.device
        prob = _Problem(ys, physics, guide, p, device)
        z = pixel_coordinates(prob.shape, device)
        lams = [0.0] if prob.grad_txm is None else (list(p.lam_candidates) if p.lam == "auto" else [float(p.lam)])
        if p.lam == "auto" and prob.val is None:
            raise SolverError("lam='auto' needs held-out patterns (holdout > 0)")
        warm_steps = 0 if p.warm_start == "none" else p.warm_steps
        track.plan(warm_solve=warm_steps > 0, units=warm_steps + len(lams) * p.steps)
        warm, warm_info = self._warm_start(ys, physics, guide, prob, track)
        init = self._warm_state(prob, z, warm, track)
        runs = []
        for i, lam in enumerate(lams):
            label = f"lambda {lam:.0e} ({i + 1}/{len(lams)}), " if len(lams) > 1 else ""
            runs.append(self._train(prob, z, lam, init, track, warm_steps + i * p.steps, label))
        best = min(runs, key=lambda r: r["score"])
        x = best.pop("x").cpu().numpy().astype(np.float64)
        seconds = time.perf_counter() - t0
        results = []
        for k in range(ys.shape[0]):
            xk = (x[k] * prob.levels[k]).reshape(prob.shape)
            info: dict[str, Any] = {
                "lam": best["lam"], "steps_run": best["steps_run"], "best_step": best["best_step"],
                "held_out_error": best["val_error"], "train_error": best["train_error"],
                "output": "composition" if prob.composition else "map", "joint_elements": int(ys.shape[0]),
                "seconds": seconds, "seconds_per_step": best["seconds_per_step"],
                "lam_scores": {str(r["lam"]): r["score"] for r in [best, *[r for r in runs if r is not best]]},
            }
            info.update(warm_info)
            results.append(SolverResult(x=xk.astype(np.float32), info=info))
        track.done(f"lambda {best['lam']:.1e}, best step {best['best_step']}")
        return results

    def _warm_start(self, ys: np.ndarray, physics: PatternPhysics, guide: np.ndarray | None,
                    prob: _Problem, track: _Track) -> tuple[torch.Tensor | None, dict[str, Any]]:
        p = self.params
        if p.warm_start == "none" or p.warm_steps == 0:
            return None, {}
        method = p.warm_start if (guide is not None or p.warm_start == "tv") else "tv"
        t0 = time.perf_counter()
        solver = {s.name: s for s in (TV, GuidedTV, CompositionTV)}[method](p.warm_params)
        solved = solver.reconstruct_all(ys, physics, guide=guide, progress=track.warm_solve(method))
        maps = np.stack([r.x.reshape(-1) for r in solved]).astype(np.float64)
        target = maps / prob.levels[:, None]  # normalised maps (E, M); fitted in map space, where errors count
        return (torch.as_tensor(target, dtype=torch.float32, device=prob.a.device),
                {"warm_start": method, "warm_start_seconds": time.perf_counter() - t0})

    def _network(self, outputs: int, device: torch.device) -> SirenNet:
        p = self.params
        return SirenNet(outputs, width=p.width, depth=p.depth, omega_0=p.omega_0, omega_hidden=p.omega_hidden,
                        fourier_features=p.fourier_features, fourier_scale=p.fourier_scale, seed=p.seed).to(device)

    def _warm_state(self, prob: _Problem, z: torch.Tensor, warm: torch.Tensor | None,
                    track: _Track) -> dict[str, torch.Tensor]:
        """Initial network weights: SIREN init, then (optionally) fitted to the warm start, once for all lambdas."""
        p = self.params
        torch.manual_seed(p.seed)
        net = self._network(prob.y.shape[0], z.device)
        if warm is not None:  # an identity-operator fit: well conditioned, fast
            opt = torch.optim.Adam(net.parameters(), lr=max(p.lr, 1e-3))
            every = _report_every(p.warm_steps)
            for step in range(p.warm_steps):
                if step % every == 0:
                    track.at(step, f"fitting the warm start, step {step}/{p.warm_steps}")
                loss = ((prob.maps(self._forward(net, z)) - warm) ** 2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return {k: v.detach().clone() for k, v in net.state_dict().items()}

    def _forward(self, net: SirenNet, z: torch.Tensor) -> torch.Tensor:
        autocast = self.params.mixed_precision and z.device.type == "cuda"
        with torch.autocast(device_type=z.device.type, dtype=torch.bfloat16, enabled=autocast):
            f = net(z)
        return f.float()

    def _train(self, prob: _Problem, z: torch.Tensor, lam: float, init: dict[str, torch.Tensor],
               track: _Track, offset: int, label: str) -> dict[str, Any]:
        """One training run; its step k is unit ``offset + k`` of the fit's progress."""
        p = self.params
        every = _report_every(p.steps)
        net = self._network(prob.y.shape[0], z.device)
        net.load_state_dict(init)
        opt = torch.optim.Adam(net.parameters(), lr=p.lr)

        def forward() -> torch.Tensor:
            return self._forward(net, z)

        val = prob.val
        best: dict[str, Any] = {"score": float("inf"), "x": None, "best_step": 0, "val_error": None,
                                "train_error": None}
        since_best = 0
        t0 = time.perf_counter()
        step = 0
        for step in range(p.steps + 1):
            x = prob.maps(forward())
            r = prob.residual(x)
            data = prob.train_error(r)
            loss = data + lam * prob.prior(x) if lam > 0 and prob.grad_txm is not None else data
            lval = float(loss.detach())
            if not np.isfinite(lval):
                raise SolverError(f"SIREN training diverged (loss {lval}) at step {step}: lower lr "
                                  f"(now {p.lr:g}) or omega")
            if val is not None and step % p.eval_every == 0:
                verr = float((r.detach()[:, val] ** 2).mean())
                if verr < best["score"]:
                    best.update(score=verr, x=x.detach().clone(), best_step=step, val_error=verr,
                                train_error=float(data.detach()))
                    since_best = 0
                else:
                    since_best += p.eval_every
                    if since_best >= p.patience:
                        break
            elif val is None and step > p.steps - p.keep_last:
                if lval < best["score"]:
                    best.update(score=lval, x=x.detach().clone(), best_step=step, train_error=float(data.detach()))
            if track.active and step % every == 0:
                track.at(offset + step, f"{label}step {step}/{p.steps}, residual {float(data.detach()) ** 0.5:.2e}")
            if step == p.steps:
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if best["x"] is None:  # e.g. steps < keep_last
            best.update(score=lval, x=x.detach().clone(), best_step=step, train_error=float(data.detach()))
        best.update(lam=lam, steps_run=step, seconds_per_step=(time.perf_counter() - t0) / max(step, 1))
        return best


class SirenPaper(Siren):
    """The paper's published SIREN configuration (slow on CPU: use a GPU or lower ``steps``)."""

    name = "siren-paper"
    Params = SirenPaperParams
    description = ("The published SIREN configuration (width 1024, depth 5, omega 30, lambda 1e-5, Adam 5e-6, "
                   "20 000 steps): hours on CPU, use a GPU or set steps.")
