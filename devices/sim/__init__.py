"""nxsci.devices.sim: the instrument model behind simulated devices and the sim IOC (no EPICS needed)."""

from ._instrument import *  # noqa: F403
from ._params import *  # noqa: F403
from ._sample import *  # noqa: F403
from ._ioc import serve
from ._records import AXIS_LIMITS, BeamlineRecords
from ._store import PVStore, make_sim_device
from . import _instrument, _params, _sample

__all__ = sorted({*(n for m in (_instrument, _params, _sample) for n in m.__all__), "serve", "AXIS_LIMITS",
                  "BeamlineRecords", "PVStore", "make_sim_device"})
