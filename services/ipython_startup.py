"""IPython startup module: ``ipython -i -m nxsci.services.ipython_startup``.

Builds the beamline session from the ``NXSCI_*`` environment variables (``NXSCI_BEAMLINE_MODE``,
``NXSCI_BEAMLINE_CONFIG``, ``NXSCI_TILED_URI``, ``NXSCI_TILED_API_KEY``) and puts ``RE``, the devices, the
plans, ``runs`` and ``to_dataset`` into the interactive namespace; ``nxsci shell`` does the same with
command-line options. Copy it into an IPython profile's ``startup/`` folder to get it in every session.
"""

from nxsci.services._session import build_session

_session = build_session()
globals().update(_session.namespace)
