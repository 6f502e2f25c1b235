"""Files: the HDF5 interchange data set (``dataset``) and reconstruction results (``results``).
``nxsci.recon`` is the public namespace."""
