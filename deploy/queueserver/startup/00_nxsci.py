"""Queue-server startup (``start-re-manager --startup-dir deploy/queueserver/startup``).

Builds the beamline named by ``NXSCI_BEAMLINE_MODE`` (``sim`` by default) and ``NXSCI_BEAMLINE_CONFIG``,
a RunEngine ``RE`` writing every run to the tiled server ``NXSCI_TILED_URI`` (key ``NXSCI_TILED_API_KEY``),
and puts the devices and the plans into the namespace the queue server offers. Without ``NXSCI_TILED_URI``
the environment refuses to open (runs would be lost), unless ``NXSCI_QSERVER_NO_TILED=1`` (listing plans
and devices: ``qserver-list-plans-devices``).
"""

import os

from nxsci.services import PLANS, build_session

if not os.environ.get("NXSCI_TILED_URI") and os.environ.get("NXSCI_QSERVER_NO_TILED") != "1":
    raise RuntimeError("NXSCI_TILED_URI is not set: the queue server would record runs nowhere. Set it (and "
                       "NXSCI_TILED_API_KEY) in start-re-manager's environment, or NXSCI_QSERVER_NO_TILED=1 "
                       "to list plans and devices only.")

_session = build_session(tiled=bool(os.environ.get("NXSCI_TILED_URI")), progress=False)
RE = _session.RE
globals().update(_session.beamline.devices)
globals().update(PLANS)
