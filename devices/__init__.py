"""nxsci.devices: ophyd devices of the NxSCI beamline (EPICS-backed), their simulated twins, the
beamline configuration file, and the simulated IOC (``nxsci sim-ioc``).

Depends on nxsci.recon, ophyd, caproto and PyMca5 only; never on plans, services, bluesky's RunEngine,
tiled or fastapi.
"""

from ._beamline import *  # noqa: F403
from ._camera import *  # noqa: F403
from ._config import *  # noqa: F403
from ._motion import *  # noqa: F403
from ._shutter import *  # noqa: F403
from ._vortex import *  # noqa: F403
from . import _beamline, _camera, _config, _motion, _shutter, _vortex

__all__ = sorted({n for m in (_beamline, _camera, _config, _motion, _shutter, _vortex) for n in m.__all__})
