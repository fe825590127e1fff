"""`tinyforge fit`: the most accurate models that fit the board, found by search.

space.py (candidates per task) → feasibility.py (static estimate, TFLM ops, budget: what
cannot fit is never trained) → trial.py (brief training, int8 conversion, TFLM measurement,
in child processes) on an engine (engines.py: a local pool or Ray) → pareto.py (the front and
its plot) → writeback.py (the chosen model as a new train.py). search.py ties them together
with Optuna. Optuna, Ray and matplotlib are imported only when a search runs.
"""

from __future__ import annotations

from tinyforge.fit.search import FIT_DIR, FitOptions, FitResult, fit, parse_size

__all__ = ["FIT_DIR", "FitOptions", "FitResult", "fit", "parse_size"]
