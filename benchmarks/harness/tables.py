"""Markdown tables and JSON files: the one output format of every benchmark here."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import json

import numpy as np

__all__ = ["table", "mean_std", "fmt_pct", "fmt_weight", "jsonable", "write_pair", "write_text", "write_json"]


def table(header: list[str], body: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def mean_std(values: list[float], fmt: str) -> str:
    """``mean±std`` of the finite values (one value: itself; none: n/a)."""
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(float(np.mean(values)), fmt)}±{format(float(np.std(values)), fmt)}"


def fmt_pct(v: float | None) -> str:
    """A ratio as a percentage with one decimal (n/a when missing or not finite)."""
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"


def fmt_weight(w: float | None) -> str:
    return "" if w is None else f"{w:.2e}"


def jsonable(obj: Any) -> Any:
    """Plain JSON types; maps (key ``x``) dropped, non-finite floats as strings (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items() if k != "x"}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else str(f)
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Atomically (a partial file never replaces a complete one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(report), indent=1, allow_nan=False) + "\n")
    tmp.replace(path)


def write_pair(md: str, report: dict[str, Any], out_dir: Path, stem: str) -> None:
    """``<out_dir>/<stem>.md`` and ``.json``."""
    write_text(out_dir / f"{stem}.md", md)
    write_json(out_dir / f"{stem}.json", report)
