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
