"""nxsci.recon: the reconstruction library (numpy, scipy, torch, h5py; PyMca for spectra).

A plain library, usable alone on an interchange file; it never imports bluesky, ophyd, tiled or fastapi.
Implementation lives in subpackages; this namespace is the public API:

* ``data``: the HDF5 interchange data set and reconstruction result files;
* ``physics``: the forward model ``PatternPhysics``, pattern registration, XRF spectra;
* ``solvers``: every reconstruction method (``base``: the interface; ``registry``: methods by name);
* ``analysis``: image metrics, pattern-set quality and its figures;
* ``sim``: phantoms and simulated data sets, apart from the library proper;
* ``_reconstruct`` (``reconstruct()``: a data set to element maps), ``_errors``, ``_progress``.
"""

from .data.dataset import *  # noqa: F403
from .data.dataset import atomic_h5_write, check_writable
from ._errors import *  # noqa: F403
from .analysis.metrics import *  # noqa: F403
from .analysis.pattern_figures import *  # noqa: F403
from .analysis.patterns import *  # noqa: F403
from .sim.phantoms import *  # noqa: F403
from .physics.forward import *  # noqa: F403
from .solvers.pinv import *  # noqa: F403
from ._reconstruct import *  # noqa: F403
from .physics.registration import *  # noqa: F403
from .data.results import *  # noqa: F403
from .sim.simulate import *  # noqa: F403
from .solvers.base import *  # noqa: F403
from .solvers.registry import *  # noqa: F403
from .solvers.trust import *  # noqa: F403
from .solvers.tv import *  # noqa: F403
from .solvers.tv_admm import *  # noqa: F403
from .solvers.weight_selection import *  # noqa: F403
from .physics.xrf import *  # noqa: F403
from .solvers.siren import *  # noqa: F403
from .solvers.siren_net import *  # noqa: F403
from .solvers.txm_prior import *  # noqa: F403
from .solvers.model_choice import *  # noqa: F403
from .solvers.joint_tv import *  # noqa: F403
from . import _errors, _reconstruct, analysis, data, physics, sim, solvers

__all__ = sorted({*(n for m in (data.dataset, data.results, _errors, _reconstruct, physics.forward,
                                physics.registration, physics.xrf, analysis.metrics, analysis.patterns,
                                analysis.pattern_figures, sim.phantoms, sim.simulate, solvers.base,
                                solvers.registry, solvers.pinv, solvers.tv, solvers.tv_admm, solvers.weight_selection,
                                solvers.trust, solvers.txm_prior, solvers.siren, solvers.siren_net,
                                solvers.model_choice, solvers.joint_tv)
                    for n in m.__all__), "atomic_h5_write", "check_writable"})
