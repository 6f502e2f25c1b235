"""Simulation, apart from the library proper: phantoms (``phantoms``) and simulated data sets, their
illumination patterns and noisy measurements (``simulate``). ``nxsci.recon`` is the public namespace."""
