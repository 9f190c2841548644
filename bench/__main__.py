"""python -m bench [NAME...]: run benchmarks, write bench/results/NAME.json, print a table."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import bench
from bench import Benchmark, Figures

RESULTS = Path(__file__).resolve().parent / "results"


def discover() -> tuple[dict[str, tuple[str, Benchmark]], list[str]]:
    """Every benchmark in the bench package (name -> (module, function)), and broken modules."""
    found: dict[str, tuple[str, Benchmark]] = {}
    broken: list[str] = []
    for module_info in pkgutil.iter_modules(bench.__path__):
        if module_info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"bench.{module_info.name}")
        except Exception as exc:  # one broken module must not hide the others' results
            broken.append(f"bench.{module_info.name}: {type(exc).__name__}: {exc}")
            continue
        for name, function in getattr(module, "BENCHMARKS", {}).items():
            if name in found:
                raise SystemExit(
                    f"bench: {name} is defined in {found[name][0]} and {module.__name__}"
                )
            found[name] = (module.__name__, function)
    return found, broken


def select(found: dict[str, tuple[str, Benchmark]], wanted: list[str]) -> list[str]:
    """Names to run: all, or those named (by benchmark or by module)."""
    if not wanted:
        return sorted(found)
    chosen: list[str] = []
    for want in wanted:
        # A benchmark's own name wins over a module of the same name.
        matches = (
            [want]
            if want in found
            else [n for n, (mod, _) in found.items() if want in (mod, mod.split(".")[-1])]
        )
        if not matches:
            raise SystemExit(f"bench: no benchmark or module called {want!r}; have {sorted(found)}")
        chosen.extend(m for m in sorted(matches) if m not in chosen)
    return chosen


def write(results: Path, name: str, record: dict[str, object]) -> Path:
    """Write one result file atomically."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(name: str, figures: Figures) -> str:
    """The figures of one benchmark as aligned lines."""
    width = max((len(k) for k in figures), default=0)
    lines = [f"== {name}"]
    for key, value in figures.items():
        if key == "goals":
            continue
        lines.append(f"  {key.ljust(width)}  {_show(value)}")
    for goal, met in figures.get("goals", {}).items():
        lines.append(f"  goal {'met   ' if met else 'MISSED'}  {goal}")
    return "\n".join(lines)


def summary_table(rows: list[tuple[str, str, float]]) -> str:
    """One line per benchmark run: name, status, wall time."""
    width = max([len("benchmark"), *(len(name) for name, _, _ in rows)])
    lines = [f"{'benchmark'.ljust(width)}  {'status':<11}  wall"]
    lines += [f"{name.ljust(width)}  {status:<11}  {wall:.1f}s" for name, status, wall in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; exit 1 if one failed or missed a goal."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmark or module names")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write results")
    args = parser.parse_args(argv)
    found, broken = discover()
    for problem in broken:
        print(f"bench: cannot import {problem}", file=sys.stderr)
    if args.list:
        for name in sorted(found):
            print(f"{name}  ({found[name][0]})")
        return 0
    status = 1 if broken else 0
    summary: list[tuple[str, str, float]] = []
    for name in select(found, args.names):
        module, function = found[name]
        started = time.monotonic()
        record: dict[str, object] = {
            "name": name,
            "module": module,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            figures = function()
        except Exception:
            traceback.print_exc()
            print(f"== {name}\n  FAILED", flush=True)
            summary.append((name, "failed", time.monotonic() - started))
            status = 1
            continue
        record["wall_seconds"] = round(time.monotonic() - started, 2)
        record["figures"] = figures
        path = write(args.results, name, record)
        print(table(name, figures), f"  -> {path}", sep="\n", flush=True)
        met = all(figures.get("goals", {}).values())
        summary.append((name, "ok" if met else "goal missed", time.monotonic() - started))
        status = status if met else 1
    print(summary_table(summary))
    return status


if __name__ == "__main__":
    sys.exit(main())
