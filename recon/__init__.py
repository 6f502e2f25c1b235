"""nxsci.recon: the reconstruction library (numpy, scipy, torch, h5py; PyMca for spectra).

A plain library, usable alone on an interchange file; it never imports bluesky, ophyd, tiled or fastapi.
Implementation lives in private modules; this namespace is the public API.
"""

from ._dataset import *  # noqa: F403
from ._dataset import atomic_h5_write, check_writable
from ._errors import *  # noqa: F403
from ._metrics import *  # noqa: F403
from ._pattern_figures import *  # noqa: F403
from ._patterns import *  # noqa: F403
from ._phantoms import *  # noqa: F403
from ._physics import *  # noqa: F403
from ._pinv import *  # noqa: F403
from ._reconstruct import *  # noqa: F403
from ._registration import *  # noqa: F403
from ._results import *  # noqa: F403
from ._simulate import *  # noqa: F403
from ._solver_base import *  # noqa: F403
from ._trust import *  # noqa: F403
from ._tv import *  # noqa: F403
from ._tv_admm import *  # noqa: F403
from ._weight_selection import *  # noqa: F403
from . import _dataset, _errors, _metrics, _pattern_figures, _patterns, _phantoms, _physics, _pinv, \
    _reconstruct, _registration, _results, _simulate, _solver_base, _trust, _tv, _tv_admm, _weight_selection

__all__ = sorted({*(n for m in (_dataset, _errors, _metrics, _pattern_figures, _patterns, _phantoms, _physics,
                                _pinv, _reconstruct, _registration, _results, _simulate, _solver_base, _trust, _tv,
                                _tv_admm,
                                _weight_selection) for n in m.__all__), "atomic_h5_write", "check_writable"})

from ._xrf import *  # noqa: F403,E402
from . import _xrf  # noqa: E402

__all__ = sorted({*__all__, *_xrf.__all__})

from ._siren import *  # noqa: F403,E402
from ._siren_net import *  # noqa: F403,E402
from ._txm_prior import *  # noqa: F403,E402
from ._model_choice import *  # noqa: F403,E402
from . import _model_choice, _siren, _siren_net, _txm_prior  # noqa: E402

__all__ = sorted({*__all__, *_model_choice.__all__, *_siren.__all__, *_siren_net.__all__, *_txm_prior.__all__})
