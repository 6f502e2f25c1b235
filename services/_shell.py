"""``nxsci shell``: IPython with the beamline, a RunEngine writing to tiled, the plans and the catalog.

Also usable as an IPython startup module: ``ipython -i -m nxsci.services.ipython_startup`` (or
``%run -m nxsci.services.ipython_startup`` inside IPython) builds the same session from the ``NXSCI_*``
environment variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._session import Session, build_session

__all__ = ["start_shell", "BANNER"]

BANNER = """nxsci beamline session ({mode}, runs -> {catalog})
  RE(nxsci_scan(num_patterns=64))              structured-illumination scan
  RE(calibrate_patterns(64)); RE(nxsci_scan(pattern_library=uid))
  RE(xrf_point_scan(16))                       raster XRF baseline (simulated pencil beam)
  runs[-1], to_dataset(uid)                    the catalog, a run as an interchange dataset
  devices: {devices}
"""


def start_shell(*, mode: str | None = None, config: str | Path | None = None, tiled_uri: str | None = None,
                tiled: bool = True, code: str | None = None) -> int:
    """Build the session and start IPython in it (``code``: run it and exit, like ``ipython -c``)."""
    import IPython

    session: Session = build_session(mode=mode, config=config, tiled_uri=tiled_uri, tiled=tiled, progress=True)
    namespace: dict[str, Any] = dict(session.namespace)
    banner = BANNER.format(mode=session.beamline.mode,
                           catalog=session.catalog.location if session.catalog else "nowhere (--no-tiled)",
                           devices=", ".join(session.beamline.devices))
    argv = ["--no-banner", "--no-confirm-exit", "--HistoryManager.enabled=False"]
    if code is not None:
        argv += ["-c", code]
    else:
        print(banner, flush=True)
    try:
        IPython.start_ipython(argv=argv, user_ns=namespace)
    finally:
        session.close()
    return 0
