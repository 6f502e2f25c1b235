"""recon_quality.py's own modules (flags, rows of a case, report, headline, scaling) over ``harness``."""
