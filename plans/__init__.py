"""nxsci.plans: bluesky plans and plan stubs of the NxSCI beamline.

Depends on bluesky, ophyd, nxsci.devices and nxsci.recon only; never on tiled, fastapi or nxsci.services
(the session that runs the plans wires the data store in). Plans take serialisable, annotated arguments
(the queue server calls them by name) and act on the beamline registered with :func:`use_beamline`.
"""

from ._context import *  # noqa: F403
from ._context import library_from_start
from ._engine import *  # noqa: F403
from ._metadata import STREAMS
from ._movers import *  # noqa: F403
from ._point_scan import *  # noqa: F403
from ._readers import *  # noqa: F403
from ._scans import *  # noqa: F403
from ._schedule import *  # noqa: F403
from ._stubs import *  # noqa: F403
from . import _context, _engine, _movers, _point_scan, _readers, _scans, _schedule, _stubs

__all__ = sorted({*(n for m in (_context, _engine, _movers, _point_scan, _readers, _scans, _schedule, _stubs) for n in m.__all__),
                  "STREAMS", "library_from_start"})
