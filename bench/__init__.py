"""Benchmarks: each module exposes BENCHMARKS, a dict of name -> function returning figures.

A benchmark function takes no arguments and returns a flat dict of figures
(numbers, strings or booleans). An optional "goals" entry maps a goal's
description to whether it was met; `python -m bench` reports missed goals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Figures = dict[str, Any]
Benchmark = Callable[[], Figures]
