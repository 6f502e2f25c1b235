"""The measurement: the forward model ``PatternPhysics`` (``forward``), sub-pixel registration of patterns
to the sample (``registration``) and XRF spectra, their lines and PyMca fit (``xrf``). ``nxsci.recon`` is
the public namespace."""
