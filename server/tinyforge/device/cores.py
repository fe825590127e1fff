"""Which core a board's firmware is built for, and which emulated machine runs it.

The figures `tinyforge verify` gives are measured on the board's own instruction set and ABI:
the compiler flags are those of the board's core (what PlatformIO's platform passes for the
MCU), and QEMU's MPS2 FPGA images provide a Cortex-M4F (AN386) and a Cortex-M7 (AN500) with
the memory map our linker script uses. Cortex-M0+ code (RP2040) runs unchanged on an ARMv7-M
machine, since ARMv6-M is a subset of it; the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyforge.boards import Board


@dataclass(frozen=True)
class Core:
    name: str  # "cortex-m4f": what the report shows
    cpu: str  # -mcpu
    float_abi: str  # -mfloat-abi
    fpu: str | None  # -mfpu (None with soft float)
    machine: str  # qemu-system-arm -M
    machine_core: str  # the core that machine emulates, for the report
    # Cycles per instruction assumed for the latency estimate: an estimate, and said to be one.
    # Cortex-M4: about 1.2 for int8 kernels running from flash behind a cache (loads, MACs and
    # branches of 1-3 cycles); Cortex-M7: dual issue, about 0.8; Cortex-M0+: no DSP or
    # multiply-accumulate instructions and a 2-stage pipeline, about 1.5.
    cpi: float
    note: str = ""

    @property
    def arch_flags(self) -> list[str]:
        flags = [f"-mcpu={self.cpu}", "-mthumb", f"-mfloat-abi={self.float_abi}"]
        if self.fpu:
            flags.append(f"-mfpu={self.fpu}")
        return flags

    @property
    def key(self) -> str:
        """Part of the object cache key: what changes the machine code."""
        return "_".join(self.arch_flags).replace("-m", "").replace("=", "-")


CORTEX_M4F = Core(
    name="cortex-m4f",
    cpu="cortex-m4",
    float_abi="hard",
    fpu="fpv4-sp-d16",
    machine="mps2-an386",
    machine_core="Cortex-M4F",
    cpi=1.2,
)
CORTEX_M7 = Core(
    name="cortex-m7",
    cpu="cortex-m7",
    float_abi="hard",
    fpu="fpv5-d16",
    machine="mps2-an500",
    machine_core="Cortex-M7",
    cpi=0.8,
)
CORTEX_M0PLUS = Core(
    name="cortex-m0plus",
    cpu="cortex-m0plus",
    float_abi="soft",
    fpu=None,
    machine="mps2-an386",
    machine_core="Cortex-M4F",
    cpi=1.5,
    note=(
        "built for Cortex-M0+ (ARMv6-M, soft float) and run on an emulated Cortex-M4F "
        "(ARMv7-M runs ARMv6-M code unchanged): outputs, memory and instruction counts are "
        "the M0+ build's; only the cycles per instruction are assumed"
    ),
)

CORES = {core.name: core for core in (CORTEX_M4F, CORTEX_M7, CORTEX_M0PLUS)}

# Boards' `cpu` field (boards.toml) → the core built and emulated.
_BY_BOARD_CPU = {
    "cortex-m4f": CORTEX_M4F,
    "cortex-m4": CORTEX_M4F,
    "cortex-m7": CORTEX_M7,
    "cortex-m7f": CORTEX_M7,
    "cortex-m0plus": CORTEX_M0PLUS,
    "cortex-m0+": CORTEX_M0PLUS,
}

# Cores no emulator or cross-compiler here can run, with the reason the report gives.
UNSUPPORTED_CPUS = {
    "xtensa-lx6": "Xtensa LX6 (ESP32) has no cross-compiler or emulator on this machine",
    "xtensa-lx7": "Xtensa LX7 (ESP32-S3) has no cross-compiler or emulator on this machine",
    "riscv32": "RISC-V (ESP32-C3) is not emulated by TinyForge yet",
}


def core_for_board(board: Board) -> Core | None:
    """The emulated core for a board, or None when its core cannot be built and run here."""
    return _BY_BOARD_CPU.get(board.cpu.lower())


def why_not_emulated(board: Board) -> str:
    reason = UNSUPPORTED_CPUS.get(board.cpu.lower(), f"the {board.cpu} core is not emulated")
    return f"{board.name} ({board.cpu}): {reason}; its figures stay estimates."
