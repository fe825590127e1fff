"""Check: the model's figures against the board's (or the user's) budget.

RAM = tensor arena (32-bit target figure) + TFLM runtime + application baseline;
flash = model + TFLM core + kernels of the ops used + application baseline. The verdict names
the resource, the figure, the limit and the biggest contributor of each violation.

After `tinyforge verify`, every part but the Arduino core's baseline is measured: the image
compiled for the board's core, split per part from its linker map (`device_parts`).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from tinyforge.boards import Board
from tinyforge.spec import Budget


@dataclass(frozen=True)
class RuntimeCosts:
    family: str
    app_flash: int
    app_ram: int
    tflm_flash: int
    tflm_ram: int
    op_flash: dict[str, int]
    op_flash_default: int
    # The core whose TFLM figures were measured (bench/device.py), or None: all estimates.
    measured_core: str | None = None

    def ops_flash(self, ops: list[str]) -> int:
        return sum(self.op_flash.get(op, self.op_flash_default) for op in sorted(set(ops)))


@cache
def _costs_table() -> dict[str, Any]:
    text = resources.files("tinyforge.check").joinpath("runtime_costs.toml").read_text("utf-8")
    return tomllib.loads(text)


def _family_core(family: str) -> str | None:
    """The emulated core of a family's boards (they share one core), for measured figures."""
    from tinyforge.boards import all_boards
    from tinyforge.device.cores import core_for_board

    for board in all_boards():
        if board.family == family:
            core = core_for_board(board)
            return core.name if core is not None else None
    return None


def runtime_costs(family: str) -> RuntimeCosts:
    table = _costs_table()
    base = dict(table["default"])
    base.update(table.get("families", {}).get(family, {}))
    op_flash = {k: int(v) for k, v in base["op_flash"].items()}
    core = _family_core(family)
    measured = table.get("cores", {}).get(core) if core else None
    if measured:
        # TFLM's own code on the family's core, measured by bench/device.py (CMSIS-NN kernels):
        # the framework, the largest CMSIS-NN share seen and each measured kernel.
        base["tflm_flash"] = int(measured["tflm_flash"]) + int(
            measured.get("kernel_library_flash", 0)
        )
        base["tflm_ram"] = int(measured["tflm_ram"])
        op_flash.update({k: int(v) for k, v in measured.get("op_flash", {}).items()})
    return RuntimeCosts(
        family=family,
        app_flash=int(base["app_flash"]),
        app_ram=int(base["app_ram"]),
        tflm_flash=int(base["tflm_flash"]),
        tflm_ram=int(base["tflm_ram"]),
        op_flash=op_flash,
        op_flash_default=int(base["op_flash_default"]),
        measured_core=core if measured else None,
    )


@dataclass
class Violation:
    resource: str  # "ram" | "flash"
    figure: int
    limit: int
    biggest: str  # the largest contributor, in words
    message: str


@dataclass
class Verdict:
    fits: bool
    ram_bytes_estimate: int
    flash_bytes_estimate: int
    ram_parts: dict[str, int]
    flash_parts: dict[str, int]
    budget: dict[str, int]
    violations: list[Violation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


ARDUINO_CORE = "Arduino core (estimate)"


def device_parts(
    board: Board, flash: dict[str, int], ram: dict[str, int]
) -> tuple[dict[str, int], dict[str, int]]:
    """RAM and flash parts from a measured image (DeviceReport.flash/.ram).

    The C library linked in the emulator build serves TinyForge's harness too (printf with
    floats); on the board it is part of the Arduino core, whose baseline stays an estimate.
    """
    costs = runtime_costs(board.family)
    ram_parts = {
        "tensor arena": ram.get("tensor arena", 0),
        "TFLM runtime": ram.get("TFLM runtime", 0),
        "application": ram.get("application", 0),
        ARDUINO_CORE: costs.app_ram,
    }
    flash_parts = {
        "model": flash.get("model", 0),
        "TFLM runtime": flash.get("TFLM runtime", 0),
        "TFLM kernels": flash.get("TFLM kernels", 0) + flash.get("CMSIS-NN", 0),
        "application": flash.get("application", 0) + flash.get("test sample", 0),
        ARDUINO_CORE: costs.app_flash,
    }
    return ram_parts, flash_parts


def check_budget(
    *,
    board: Board,
    budget: Budget,
    model_bytes: int,
    arena_bytes_target: int,
    ops: list[str],
    largest_tensor: str | None = None,
    measured: tuple[dict[str, int], dict[str, int]] | None = None,
) -> Verdict:
    """`measured`: (ram_parts, flash_parts) of the image built for the board (device_parts)."""
    costs = runtime_costs(board.family)
    if measured is not None:
        ram_parts, flash_parts = measured
    else:
        ram_parts = {
            "tensor arena": arena_bytes_target,
            "TFLM runtime": costs.tflm_ram,
            "application and framework": costs.app_ram,
        }
        flash_parts = {
            "model": model_bytes,
            "TFLM runtime and kernels": costs.tflm_flash + costs.ops_flash(ops),
            "application and framework": costs.app_flash,
        }
    verdict = Verdict(
        fits=True,
        ram_bytes_estimate=sum(ram_parts.values()),
        flash_bytes_estimate=sum(flash_parts.values()),
        ram_parts=ram_parts,
        flash_parts=flash_parts,
        budget={"ram_bytes": budget.ram_bytes, "flash_bytes": budget.flash_bytes},
    )
    for resource, figure, limit, parts in (
        ("ram", verdict.ram_bytes_estimate, budget.ram_bytes, ram_parts),
        ("flash", verdict.flash_bytes_estimate, budget.flash_bytes, flash_parts),
    ):
        if figure <= limit:
            continue
        name, size = max(parts.items(), key=lambda kv: kv[1])
        biggest = f"{name} {kb(size)}"
        # The model's own share is what the user can change: always name it.
        model_part = "tensor arena" if resource == "ram" else "model"
        detail = f"{model_part} {kb(parts[model_part])}"
        if resource == "ram" and largest_tensor:
            detail += f" (largest tensor: {largest_tensor})"
        if name != model_part:
            detail = f"{biggest}; {detail}"
        verdict.violations.append(
            Violation(
                resource=resource,
                figure=figure,
                limit=limit,
                biggest=biggest,
                message=(
                    f"{resource.upper()} {kb(figure)} exceeds the {kb(limit)} budget on "
                    f"{board.id} by {kb(figure - limit)}; biggest part: {detail}"
                ),
            )
        )
    verdict.fits = not verdict.violations
    return verdict
