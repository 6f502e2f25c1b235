"""Reconstruction methods by name: ``get_solver("tv", params)``, ``available_methods()``, ``method_schemas()``.

The built-in methods are the :class:`~.base.Solver` subclasses (with a ``name``) that the modules in
:data:`BUILTIN_MODULES` define and export; those modules are imported on the first lookup, not before.
Adding a method = a module under ``solvers/`` that imports :mod:`.base`, plus one line in
:data:`BUILTIN_MODULES`. Solver modules never import this module (``tests/test_architecture.py``); one that
uses another method instantiates its class directly.

Other code can add methods with :func:`register_solver`; a name it registers takes precedence over a
built-in method of the same name.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from typing import Any

from .._errors import SolverError
from .base import Solver

__all__ = ["available_methods", "get_solver", "method_schemas", "register_solver"]

#: the modules (relative to this package) whose Solver subclasses are the built-in methods
BUILTIN_MODULES: tuple[str, ...] = (
    ".pinv",  # pinv
    ".tv",  # tv, guided-tv, composition-tv
    ".siren",  # siren, siren-paper
    ".model_choice",  # auto
    ".joint_tv",  # joint-tv
)

_REGISTRY: dict[str, type[Solver]] = {}
_builtin_loaded = False
_lock = threading.Lock()


def register_solver(cls: type[Solver]) -> type[Solver]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_solver(method: str, params: dict[str, Any] | None = None) -> Solver:
    """Instantiate a method by name; unknown names and bad parameters raise :class:`SolverError`."""
    _load_builtin()
    try:
        cls = _REGISTRY[method]
    except KeyError:
        raise SolverError(f"unknown method '{method}': choose one of {', '.join(sorted(_REGISTRY))}") from None
    return cls(params or {})


def method_schemas() -> dict[str, dict[str, Any]]:
    """JSON schema of each method's parameters (published by the REST service)."""
    _load_builtin()
    return {name: {"description": cls.description, "uses_txm": cls.uses_guide, "needs_txm": cls.needs_guide(),
                   "parameters": cls.Params.model_json_schema()} for name, cls in sorted(_REGISTRY.items())}


def _defined_solvers(module: Any) -> list[type[Solver]]:
    """The methods a solver module defines: concrete :class:`Solver` subclasses in its ``__all__`` that were
    defined there (not imported from another solver module) and set their own ``name``."""
    found = []
    for attr in getattr(module, "__all__", ()):
        obj = getattr(module, attr)
        if (inspect.isclass(obj) and issubclass(obj, Solver) and not inspect.isabstract(obj)
                and obj.__module__ == module.__name__ and "name" in vars(obj)):
            found.append(obj)
    return found


def _load_builtin() -> None:
    global _builtin_loaded
    if _builtin_loaded:
        return
    with _lock:
        if _builtin_loaded:
            return
        for name in BUILTIN_MODULES:
            for cls in _defined_solvers(importlib.import_module(name, __package__)):
                _REGISTRY.setdefault(cls.name, cls)
        _builtin_loaded = True
