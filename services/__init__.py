"""nxsci.services: the run catalog (tiled), the raw-run -> dataset pipeline, beamline sessions, and the
reconstruction service.

The top layer (services -> plans -> devices -> recon): it wires bluesky's RunEngine to tiled through
bluesky-tiled-plugins' ``TiledWriter``, reads runs back, turns them into interchange datasets, and serves
reconstructions.
"""

# -- runs into tiled, run -> dataset pipeline, sessions (issue 5)
from ._export import *  # noqa: F403
from ._interrupts import *  # noqa: F403
from ._pipeline import *  # noqa: F403
from ._point_scan import *  # noqa: F403
from ._progress import *  # noqa: F403
from ._runs import *  # noqa: F403
from ._server import *  # noqa: F403
from ._session import *  # noqa: F403
from ._settings import *  # noqa: F403
from ._tiled import *  # noqa: F403
from ._xrf_fit import *  # noqa: F403
from . import _export, _interrupts, _pipeline, _point_scan, _progress, _runs, _server, _session, _settings, _tiled, \
    _xrf_fit

__all__ = sorted({n for m in (_export, _interrupts, _pipeline, _point_scan, _progress, _runs, _server, _session, _settings, _tiled,
                              _xrf_fit) for n in m.__all__})

# -- reconstruction service (issue 6): settings, job store, executors, REST app
from ._service_settings import *  # noqa: F403,E402
from ._dataset_source import *  # noqa: F403,E402
from ._job_store import *  # noqa: F403,E402
from ._worker import *  # noqa: F403,E402
from ._results_tiled import *  # noqa: F403,E402
from ._interface import *  # noqa: F403,E402
from ._api import *  # noqa: F403,E402
from . import _api, _dataset_source, _interface, _job_store, _results_tiled, _service_settings, _worker  # noqa: E402

__all__ = sorted({*globals().get("__all__", ()), *(n for m in (_service_settings, _dataset_source, _job_store, _worker,
                                                               _results_tiled, _interface, _api) for n in m.__all__)})
