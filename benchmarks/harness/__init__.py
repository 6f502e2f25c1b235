"""Shared benchmark harness: cases, the TV-oracle, time/memory probes, scoring and tables.

One module per job, so every benchmark (``recon_quality.py``, ``robustness.py``) builds its cases, finds its
TV-oracle and measures its calls the same way; a later change to the solvers is judged by one yardstick.
Scripts put ``benchmarks/`` on ``sys.path`` and import ``harness.<module>``.
"""
