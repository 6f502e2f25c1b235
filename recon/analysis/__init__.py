"""Measures: image metrics (``metrics``: PSNR, SSIM, FRC), pattern-set quality (``patterns``) and its
figures (``pattern_figures``). ``nxsci.recon`` is the public namespace."""
