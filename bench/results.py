"""The figures of `make bench` (issue 12's table): each beside its anchors and its target, printed as
a table and written to bench/results.json:
`{"figures": [{"name", "value", "unit", "n", "target", "anchors": {name: value}, "meets": bool}], "machine": {...}}`."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    n: int
    target: str
    meets: bool
    anchors: dict[str, float] = field(default_factory=dict)
    note: str = ""


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def machine() -> dict[str, object]:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    mem_kb = 0
    with contextlib.suppress(OSError, StopIteration):
        mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gb": round(mem_kb / 1e6, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write(figures: list[Figure], path: Path = RESULTS) -> None:
    doc = {"figures": [asdict(f) for f in figures], "machine": machine()}
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.2f}"


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "target", "meets", "anchors")]
    for f in figures:
        anchors = ", ".join(f"{k} {_number(v)}" for k, v in f.anchors.items())
        rows.append((f.name, f"{_number(f.value)} {f.unit} (n={f.n})", f.target, "yes" if f.meets else "NO", anchors))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[j]) if j < 4 else cell for j, cell in enumerate(row)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  -------")
    notes = [f"  {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["notes:", *notes] if notes else []))
