"""The Pareto front of the kept candidates (accuracy up; RAM, flash and MACs down) and its plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from tinyforge.fit.trial import TrialRecord

Objective = Literal["accuracy", "arena_bytes_target", "model_bytes", "macs"]
Size = Literal["arena_bytes_target", "model_bytes"]
# What each kept trial is compared on: (key, larger is better).
OBJECTIVES: tuple[tuple[Objective, bool], ...] = (
    ("accuracy", True),
    ("arena_bytes_target", False),
    ("model_bytes", False),
    ("macs", False),
)
OBJECTIVE_KEYS: tuple[Objective, ...] = tuple(key for key, _ in OBJECTIVES)


def _vector(trial: TrialRecord) -> tuple[float, ...]:
    # Everything as "smaller is better".
    return tuple(-float(trial[k]) if up else float(trial[k]) for k, up in OBJECTIVES)


def dominates(a: TrialRecord, b: TrialRecord) -> bool:
    va, vb = _vector(a), _vector(b)
    return all(x <= y for x, y in zip(va, vb, strict=True)) and va != vb


def front(trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Trials no other trial dominates, most accurate first."""
    kept = [t for t in trials if not any(dominates(o, t) for o in trials if o is not t)]
    return sorted(kept, key=lambda t: (_vector(t), t["number"]))


def choose(front_trials: Sequence[TrialRecord], tolerance: float) -> TrialRecord | None:
    """The front's best accuracy, or within `tolerance` of it the one that needs least RAM,
    then flash, then MACs (a trial the lexicographic order picks is never dominated)."""
    if not front_trials:
        return None
    best = max(t["accuracy"] for t in front_trials)
    close = [t for t in front_trials if t["accuracy"] >= best - tolerance - 1e-12]
    return min(
        close,
        key=lambda t: (
            t["arena_bytes_target"],
            t["model_bytes"],
            t["macs"],
            -t["accuracy"],
            t["number"],
        ),
    )


def plot(
    path: Path,
    kept: Sequence[TrialRecord],
    front_trials: Sequence[TrialRecord],
    chosen: TrialRecord | None,
    *,
    title: str,
    ram_limit: int | None,
    flash_limit: int | None,
    measured_over: Sequence[TrialRecord] = (),
) -> Path:
    """Accuracy against RAM and against flash, the front joined, the chosen model ringed."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    # The object API, not pyplot: no global figure state in a server's worker thread.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=110)
    axes = fig.subplots(1, 2, sharey=True)
    on_front = {t["number"] for t in front_trials}
    panels: tuple[tuple[Any, Size, str, int | None], ...] = (
        (axes[0], "arena_bytes_target", "RAM: tensor arena, 32-bit target (KB)", ram_limit),
        (axes[1], "model_bytes", "flash: model (KB)", flash_limit),
    )
    for ax, key, label, limit in panels:
        others = [t for t in kept if t["number"] not in on_front]
        if others:
            ax.scatter(
                [t[key] / 1024 for t in others],
                [100 * t["accuracy"] for t in others],
                c="#9aa5b1",
                s=28,
                label="trained, dominated",
            )
        if measured_over:
            ax.scatter(
                [t[key] / 1024 for t in measured_over],
                [100 * t["accuracy"] for t in measured_over],
                marker="x",
                c="#c0392b",
                s=32,
                label="over budget when measured",
            )
        if front_trials:
            ordered = sorted(front_trials, key=lambda t: t[key])
            # The front in this projection: the best accuracy reachable up to each size.
            xs, ys, best = [], [], -1.0
            for t in ordered:
                if t["accuracy"] > best:
                    best = t["accuracy"]
                    xs.append(t[key] / 1024)
                    ys.append(100 * best)
            ax.step(xs, ys, where="post", c="#2e86de", lw=1.2, alpha=0.7)
            ax.scatter(
                [t[key] / 1024 for t in front_trials],
                [100 * t["accuracy"] for t in front_trials],
                c="#2e86de",
                s=36,
                label="Pareto front",
                zorder=3,
            )
            for t in front_trials:
                ax.annotate(
                    f"#{t['number']}",
                    (t[key] / 1024, 100 * t["accuracy"]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                )
        if chosen is not None:
            ax.scatter(
                [chosen[key] / 1024],
                [100 * chosen["accuracy"]],
                s=160,
                facecolors="none",
                edgecolors="#27ae60",
                linewidths=2,
                label=f"chosen #{chosen['number']}",
                zorder=4,
            )
        if limit:
            ax.axvline(limit / 1024, c="#c0392b", ls="--", lw=1, label="budget")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy on the test split (%)")
    axes[1].legend(loc="lower right", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
