"""Model and data health: say plainly when a model is useless, fragile or will crash the device.

Every check returns `Finding`s. Their code's first part says which family found it:
`data.*` (the dataset, before and after training, health.data), `baseline.*` (the network
against the majority class and a classical model, health.baseline) and `quant.*` (the int8
model, health.quant).

This package imports no TensorFlow, and scikit-learn only inside the functions that fit a
model: the language server imports it to read a report's findings and must start fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One thing a health check found, in a sentence the user can act on."""

    severity: Severity  # error: the model is useless or will crash; warning: fragile; info
    code: str  # dotted, family first: 'data.duplicates', 'baseline.chance', 'quant.softmax-scale'
    message: str  # what is wrong, with the figures that show it
    fix: str = ""  # what to do about it
    where: str = ""  # what it is about: 'dataset', "class 'banana'", "tensor 4 'logits'", ...

    @property
    def family(self) -> str:
        return self.code.split(".", 1)[0]

    def sentence(self) -> str:
        """Message and fix as one line (for errors that stop a build, and for editors)."""
        return f"{self.message} {self.fix}".strip() if self.fix else self.message

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Errors first, then warnings, then notes; stable within a severity."""
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))


def pct(x: float) -> str:
    """A fraction as a percentage the way messages show it: '27%', '97.5%'."""
    value = 100 * x
    return f"{value:.0f}%" if abs(value - round(value)) < 0.05 else f"{value:.1f}%"
