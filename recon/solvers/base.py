"""One interface for every reconstruction method: ``solver(y, physics, guide=...) -> SolverResult``.

Each method declares its parameters as a pydantic model, so the CLI, the REST service and the
benchmarks validate them the same way and can publish a JSON schema of them.

This module knows no concrete method: methods import it, never the reverse. Looking a method up by its
name is :mod:`.registry`'s job.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from .._errors import DatasetError, SolverError
from ..physics.forward import PatternPhysics

__all__ = ["Solver", "SolverParams", "SolverResult", "ProgressCallback", "check_inputs"]

#: called with (fraction done in [0, 1], short status text)
ProgressCallback = Callable[[float, str], None]


class SolverParams(BaseModel):
    """Base of every method's parameters: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


@dataclasses.dataclass
class SolverResult:
    """A reconstructed map plus what a user needs to trust it (chosen weight, residual, timings)."""

    x: np.ndarray
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: held-out residual (prediction - measurement) of every measurement at the CV minimum, in the
    #: measurements' units, when the method cross-validated: compares models measurement by measurement
    heldout: np.ndarray | None = dataclasses.field(default=None, repr=False)


class Solver(abc.ABC):
    """A reconstruction method. Subclasses set ``name``, ``Params`` and implement :meth:`solve`."""

    name: ClassVar[str]
    Params: ClassVar[type[SolverParams]] = SolverParams
    uses_guide: ClassVar[bool] = False
    #: None = same as ``uses_guide``; False for methods that use a TXM image when there is one
    guide_required: ClassVar[bool | None] = None
    description: ClassVar[str] = ""
    #: True for methods whose :meth:`solve_many` accepts the measurements' uncertainties (``sigma=``)
    uses_sigma: ClassVar[bool] = False

    def __init__(self, params: SolverParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        merged = dict(params.model_dump() if isinstance(params, SolverParams) else (params or {}))
        merged.update(kwargs)
        try:
            self.params = self.Params(**merged)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
                                 for e in exc.errors())
            raise SolverError(f"invalid parameters for method '{self.name}': {problems}") from None

    def __call__(self, y: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None = None,
                 progress: ProgressCallback | None = None) -> SolverResult:
        y = check_inputs(y, physics, guide if self.uses_guide else None)
        return self.solve(y, physics, guide=guide if self.uses_guide else None, progress=progress)

    @classmethod
    def needs_guide(cls) -> bool:
        return cls.uses_guide if cls.guide_required is None else bool(cls.guide_required)

    def reconstruct_all(self, ys: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None = None,
                        sigma: np.ndarray | None = None,
                        progress: ProgressCallback | None = None) -> list[SolverResult]:
        """Every element's measurements ``ys`` (E, N) at once, with their 1-sigma uncertainties ``sigma``
        (E, N) when known (methods that use them choose weights from the noise level); methods that share
        work across elements override :meth:`solve_many`, the rest solve one by one."""
        ys = np.atleast_2d(np.asarray(ys, dtype=np.float64))
        checked = np.stack([check_inputs(y, physics, guide if self.uses_guide else None) for y in ys])
        extra: dict[str, Any] = {}
        if sigma is not None and self.uses_sigma:
            extra["sigma"] = check_sigma(sigma, checked.shape)
        return self.solve_many(checked, physics, guide=guide if self.uses_guide else None, progress=progress,
                               **extra)

    def solve_many(self, ys: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None,
                   progress: ProgressCallback | None) -> list[SolverResult]:
        out = []
        for k, y in enumerate(ys):
            sub = None if progress is None else (
                lambda f, t, k=k: progress((k + f) / len(ys), t))  # type: ignore[misc]
            out.append(self.solve(y, physics, guide=guide, progress=sub))
        return out

    @abc.abstractmethod
    def solve(self, y: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None,
              progress: ProgressCallback | None) -> SolverResult:
        """Reconstruct one element map from its measurements."""


def check_inputs(y: np.ndarray, physics: PatternPhysics, guide: np.ndarray | None) -> np.ndarray:
    """Shapes and finiteness, checked before any solver work so errors name the real problem."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.size != physics.num_patterns:
        raise DatasetError(f"{y.size} measurements for {physics.num_patterns} patterns")
    if not np.all(np.isfinite(y)):
        raise DatasetError("measurements contain NaN or infinite values")
    if guide is not None:
        g = np.asarray(guide)
        if g.shape != physics.img_shape:
            raise DatasetError(f"TXM image has shape {g.shape} but the patterns are {physics.img_shape}")
        if not np.all(np.isfinite(g)):
            raise DatasetError("TXM image contains NaN or infinite values")
    if physics.num_patterns < 2:
        raise SolverError(f"too few patterns: {physics.num_patterns} (need at least 2)")
    return y


def check_sigma(sigma: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Uncertainties must match the measurements and be finite and positive (they divide residuals)."""
    s = np.asarray(sigma, dtype=np.float64)
    if s.ndim == 1 and len(shape) == 2 and shape[0] == 1:
        s = s[None]
    if s.shape != tuple(shape):
        raise DatasetError(f"uncertainties (sigma) have shape {s.shape} but the measurements have {tuple(shape)}")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise DatasetError("uncertainties (sigma) must be finite and >= 0")
    if np.any(s == 0):  # e.g. a fit of an empty spectrum: as certain as the most certain measurement
        positive = np.where(s > 0, s, np.inf).min(axis=1, keepdims=True)
        if not np.all(np.isfinite(positive)):
            raise DatasetError("uncertainties (sigma) of an element are all zero")
        s = np.where(s > 0, s, positive)
    return s
