"""The layering services -> plans -> devices -> recon, and the package mapping, enforced."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "nxsci.recon": ["bluesky", "ophyd", "tiled", "fastapi", "nxsci.devices", "nxsci.plans", "nxsci.services"],
    "nxsci.devices": ["nxsci.plans", "nxsci.services", "fastapi"],
    "nxsci.plans": ["nxsci.services", "fastapi"],
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_importing_a_layer_pulls_in_nothing_above_it(module: str) -> None:
    code = f"import sys, {module}; print(' '.join(m for m in {FORBIDDEN[module]!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing {module} pulls in {out.stdout.strip()}"


LAYER_FOLDERS = {"nxsci.recon": "recon", "nxsci.devices": "devices", "nxsci.plans": "plans"}


#: where each of the distribution's packages lives (pyproject's package-dir), to tell modules from names
PACKAGE_FOLDERS = {"nxsci": "nxsci", "nxsci.recon": "recon", "nxsci.devices": "devices", "nxsci.plans": "plans",
                   "nxsci.services": "services"}


def _is_module(name: str) -> bool:
    """Whether ``name`` is a module or subpackage of this distribution (found in its folders)."""
    if name in PACKAGE_FOLDERS:
        return True
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        folder = PACKAGE_FOLDERS.get(".".join(parts[:cut]))
        if folder is not None:
            path = ROOT / folder / Path(*parts[cut:])
            return path.with_suffix(".py").is_file() or path.is_dir()
    return False


def _imported_modules(path: Path, package: str) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too): ``from M import n``
    counts as M.n when that is a module of this distribution, else as M (a name taken from M runs M's
    ``__init__``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if _is_module(sub) else base)
    return found


@pytest.mark.parametrize("layer", sorted(LAYER_FOLDERS))
def test_no_source_file_imports_an_upper_layer(layer: str) -> None:
    folder = ROOT / LAYER_FOLDERS[layer]
    offenders = []
    for path in folder.rglob("*.py"):
        rel = path.relative_to(folder).with_suffix("")
        package = ".".join([layer, *rel.parts[:-1]])
        for mod in _imported_modules(path, package):
            if any(mod == bad or mod.startswith(bad + ".") for bad in FORBIDDEN[layer]):
                offenders.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not offenders, "layering violated (services -> plans -> devices -> recon):\n" + "\n".join(offenders)


def test_subpackages_map_to_top_level_folders() -> None:
    import nxsci.devices
    import nxsci.plans
    import nxsci.recon
    import nxsci.services

    for mod, folder in [(nxsci.recon, "recon"), (nxsci.devices, "devices"), (nxsci.plans, "plans"),
                        (nxsci.services, "services")]:
        assert Path(mod.__file__).resolve().parent == ROOT / folder


@pytest.mark.slow
def test_built_wheel_contains_and_imports_every_subpackage(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"),
                    str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("nxsci-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for sub in ("recon", "devices", "plans", "services"):
        assert f"nxsci/{sub}/__init__.py" in names
    assert "nxsci/cli.py" in names
    missing = [src for folder in ("recon", "devices", "plans", "services")
               for src in sorted((ROOT / folder).rglob("*.py"))
               if f"nxsci/{src.relative_to(ROOT).as_posix()}" not in names]
    assert not missing, f"source files missing from the wheel (pyproject's packages/package-dir): {missing}"
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    code = ("import nxsci.recon, nxsci.devices, nxsci.plans, nxsci.services, nxsci.cli;"
            "assert 'tv' in nxsci.recon.available_methods();"
            "print(nxsci.recon.__file__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert out.stdout.strip().startswith(str(target))


SOLVERS = ROOT / "recon" / "solvers"
REGISTRY = "nxsci.recon.solvers.registry"
#: importing either runs the registry (nxsci.recon's namespace, the solvers package's re-exports)
REGISTRY_HOLDERS = {"nxsci.recon", "nxsci.recon.solvers", REGISTRY}


def test_solver_modules_never_import_the_registry() -> None:
    """Solvers import ``base`` (and each other); only the registry knows them, so there is no import cycle."""
    modules = sorted(p for p in SOLVERS.glob("*.py") if p.name not in {"__init__.py", "registry.py"})
    assert {p.stem for p in modules} >= {"base", "tv", "pinv", "siren", "model_choice"}
    offenders = [f"{p.relative_to(ROOT)} imports {mod}" for p in modules
                 for mod in sorted(_imported_modules(p, "nxsci.recon.solvers")) if mod in REGISTRY_HOLDERS]
    assert not offenders, "a solver module imports the registry (or a namespace that does):\n" + "\n".join(offenders)


def test_solver_base_alone_imports_no_concrete_solver() -> None:
    """``solvers.base`` (with the solvers package and its registry) loads no method; the registry imports its
    built-in modules on the first lookup. nxsci.recon's own ``__init__`` (which imports everything) is bypassed."""
    code = """
import importlib.util, json, sys
spec = importlib.util.find_spec("nxsci.recon")
sys.modules["nxsci.recon"] = importlib.util.module_from_spec(spec)  # the package, its __init__ not run
import nxsci.recon.solvers.base
def solvers():
    return sorted(m for m in sys.modules if m.startswith("nxsci.recon.solvers."))
before = solvers()
from nxsci.recon.solvers import registry
middle = solvers()
methods = registry.available_methods()
print(json.dumps({"before": before, "middle": middle, "after": solvers(), "methods": methods,
                  "builtin": list(registry.BUILTIN_MODULES)}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    light = ["nxsci.recon.solvers.base", "nxsci.recon.solvers.registry"]
    assert got["before"] == light, f"importing solvers.base loaded {sorted(set(got['before']) - set(light))}"
    assert got["middle"] == light
    assert {"nxsci.recon.solvers" + m for m in got["builtin"]} <= set(got["after"])
    assert got["methods"] == ["auto", "composition-tv", "guided-tv", "joint-tv", "pinv", "siren", "siren-paper", "tv"]
