"""Reconstruction methods behind one interface.

* ``base``: :class:`Solver`, :class:`SolverParams`, :class:`SolverResult`, input checks; knows no concrete method.
* ``registry``: methods by name (``get_solver``, ``available_methods``, ``method_schemas``, ``register_solver``);
  the one list of built-in method modules, imported on the first lookup.
* methods: ``pinv`` (truncated SVD), ``tv`` (TV, guided TV, composition TV; ``tv_admm`` its exact ADMM,
  ``tv_progress`` its progress reports), ``siren`` (+ ``siren_net``), ``model_choice`` (``auto``).
* shared by the methods: ``weight_selection`` (cross-validation, discrepancy), ``txm_prior`` (TXM thickness
  and gradient), ``trust`` (can the data support a map?).

This package imports no concrete method itself; ``nxsci.recon`` is the public namespace.
"""

from .base import ProgressCallback, Solver, SolverParams, SolverResult, check_inputs
from .registry import available_methods, get_solver, method_schemas, register_solver

__all__ = ["ProgressCallback", "Solver", "SolverParams", "SolverResult", "available_methods", "check_inputs",
           "get_solver", "method_schemas", "register_solver"]
