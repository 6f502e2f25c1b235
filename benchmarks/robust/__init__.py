"""robustness.py's own modules: which case families, how one case is run, how the results are reported."""
