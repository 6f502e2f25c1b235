"""nxsci.devices.sim: the instrument model behind simulated devices and the sim IOC (no EPICS needed)."""

from ._instrument import *  # noqa: F403
from ._params import *  # noqa: F403
from ._sample import *  # noqa: F403
from . import _instrument, _params, _sample

__all__ = sorted({n for m in (_instrument, _params, _sample) for n in m.__all__})
