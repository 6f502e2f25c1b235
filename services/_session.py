"""A beamline session: the beamline, a RunEngine writing every run to tiled, and the plans.

The same builder serves the three places scientists run plans: ``nxsci shell`` (IPython), ``nxsci acquire``
(one scan from the command line) and the queue server's startup directory, so the three agree on devices,
plans, metadata and where runs go.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from nxsci.devices import Beamline, load_config, make_beamline
from nxsci.plans import (PatternLibrary, PlanError, RunEngine, calibrate_patterns, draw_schedule, library_from_start,
                         nxsci_scan, use_beamline, xrf_point_scan)

from ._settings import BeamlineSettings, TiledSettings
from ._tiled import RunCatalog, open_catalog

__all__ = ["Session", "build_session", "pattern_library_lookup", "PLANS"]

logger = logging.getLogger(__name__)

#: the plans a session offers (IPython namespace, queue server)
PLANS = {"nxsci_scan": nxsci_scan, "calibrate_patterns": calibrate_patterns, "xrf_point_scan": xrf_point_scan}


def pattern_library_lookup(catalog: RunCatalog) -> Any:
    """``uid -> PatternLibrary`` read from the catalog: the configurations a ``calibrate_patterns`` run
    recorded (it must have finished successfully)."""

    def lookup(uid: str) -> PatternLibrary:
        try:
            run = catalog.run(uid)
        except Exception as exc:
            raise PlanError(f"pattern library {uid}: {exc}") from None
        metadata = run.metadata
        stop = metadata.get("stop") or {}
        if stop.get("exit_status") != "success":
            raise PlanError(f"pattern library {uid} did not finish successfully "
                            f"(exit status: {stop.get('exit_status', 'still running')})")
        return library_from_start(str(metadata["start"]["uid"]), metadata["start"])

    return lookup


@dataclasses.dataclass
class Session:
    """What ``build_session`` made; :attr:`namespace` is what IPython and the queue server see."""

    beamline: Beamline
    RE: RunEngine
    catalog: RunCatalog | None
    namespace: dict[str, Any]

    def close(self) -> None:
        """Release the catalog (the embedded one holds its database) and the simulated beamline."""
        if self.catalog is not None:
            self.catalog.close()
        self.beamline.close()


def build_session(*, mode: str | None = None, config: str | Path | None = None, tiled_uri: str | None = None,
                  api_key: str | None = None, tiled: bool = True, progress: bool = True,
                  beamline_settings: BeamlineSettings | None = None, tiled_settings: TiledSettings | None = None,
                  run_engine: RunEngine | None = None) -> Session:
    """Build the beamline (``sim`` or ``epics``, from the config), a RunEngine subscribed to tiled
    (``tiled_uri``, else ``NXSCI_TILED_URI``, else the embedded catalog; ``tiled=False``: no catalog),
    and register the beamline for the plans. ``progress`` adds progress bars for moves and scans (plain
    lines now and then when the output is not a terminal)."""
    bsettings = beamline_settings or BeamlineSettings()
    tsettings = tiled_settings or TiledSettings()
    cfg = load_config(config if config is not None else bsettings.beamline_config)
    beamline = make_beamline(mode or bsettings.beamline_mode, cfg)  # type: ignore[arg-type]
    catalog = None
    try:
        RE = run_engine or RunEngine({})
        if tiled:
            catalog = open_catalog(tiled_uri, api_key=api_key, settings=tsettings)
            RE.subscribe(catalog.writer())
        use_beamline(beamline, pattern_library=pattern_library_lookup(catalog) if catalog is not None else None)
        if progress:
            import sys

            from bluesky.utils import ProgressBarManager

            from ._progress import ScanProgress, is_terminal

            if is_terminal(sys.stdout):  # bluesky's status bars redraw themselves: only on a terminal
                RE.waiting_hook = ProgressBarManager()
            RE.subscribe(ScanProgress())
    except BaseException:
        if catalog is not None:
            catalog.close()
        beamline.close()
        raise
    namespace: dict[str, Any] = {"RE": RE, "beamline": beamline, **beamline.devices, **PLANS,
                                 "draw_schedule": draw_schedule}
    if catalog is not None:
        from ._pipeline import run_to_dataset

        namespace.update(catalog=catalog, runs=catalog.runs,
                         to_dataset=lambda uid, **kw: run_to_dataset(catalog, uid, **kw))
    return Session(beamline=beamline, RE=RE, catalog=catalog, namespace=namespace)
