"""The layering services -> plans -> devices -> recon, and the package mapping, enforced."""

from __future__ import annotations

import ast
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


def _imported_modules(path: Path, package: str) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.add(node.module)
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
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    code = ("import nxsci.recon, nxsci.devices, nxsci.plans, nxsci.services, nxsci.cli;"
            "print(nxsci.recon.__file__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert out.stdout.strip().startswith(str(target))
