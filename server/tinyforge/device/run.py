"""Run a firmware image in qemu-system-arm and read what the harness reports.

The harness prints `@@tinyforge …` lines on the semihosting console between the sketch's own
Serial output; the QEMU plugin prints `insn_count invoke N` per Invoke(). Parsing is pure and
never raises (a run that stops early simply has fewer results).
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tinyforge.device.build import symbol_addresses
from tinyforge.device.cache import cache_root, compiler_version, run_tool
from tinyforge.device.cores import Core
from tinyforge.errors import StageError

_MARK = re.compile(r"^@@tinyforge (\S+)\s*(.*)$")
_INSNS = re.compile(r"^insn_count invoke (\d+)$")
_ARENA_PRINT = re.compile(r"tensor arena used: (\d+) of (\d+)")


@dataclass
class RunResult:
    outputs: dict[int, bytes] = field(default_factory=dict)  # invoke index → raw output
    output_type: int | None = None  # TfLiteType of output 0
    instructions: list[int] = field(default_factory=list)  # per Invoke, in order
    arena_used: int | None = None  # the sketch's interpreter, after AllocateTensors
    probe_ok: bool | None = None  # a probe run: the arena size allocated and ran
    arena_probe_used: int | None = None
    sketch_arena_print: tuple[int, int] | None = None  # "tensor arena used: N of M"
    serial: list[str] = field(default_factory=list)  # the sketch's own lines
    allocations: str = ""  # a record run: RecordingMicroAllocator's report on this core
    problems: list[str] = field(default_factory=list)  # halted, fault, no-invoke, …
    finished: bool = False
    seconds: float = 0.0


def parse_run(text: str) -> RunResult:
    result = RunResult()
    recording: list[str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        m = _INSNS.match(line)
        if m:
            result.instructions.append(int(m.group(1)))
            continue
        m = _MARK.match(line)
        if recording is not None and not (m and m.group(1) == "record"):
            recording.append(line)
            continue
        if not m:
            if line.strip() == "HALTED":  # TFLM's TFLITE_ABORT: it never returns
                result.problems.append("TFLM halted (an assertion in TFLM or a kernel failed)")
            if line.strip():
                result.serial.append(line)
                a = _ARENA_PRINT.search(line)
                if a and result.sketch_arena_print is None:
                    result.sketch_arena_print = (int(a.group(1)), int(a.group(2)))
            continue
        kind, rest = m.group(1), m.group(2).split()
        try:
            if kind == "out" and len(rest) == 4:
                index, ttype, _size, hexdata = rest
                result.outputs[int(index)] = bytes.fromhex(hexdata)
                result.output_type = int(ttype)
            elif kind == "out" and len(rest) == 3 and rest[2] == "0":  # an empty tensor
                result.outputs[int(rest[0])] = b""
            elif kind == "out":
                raise ValueError(line)
            elif kind == "arena_used" and rest:
                result.arena_used = int(rest[0])
            elif kind == "probe" and rest and rest[0].startswith("size="):
                fields = dict(item.split("=", 1) for item in rest if "=" in item)
                int(fields["size"])
                result.probe_ok = fields["ok"] == "1"
                result.arena_probe_used = int(fields["used"])
            elif kind == "record" and rest[:1] == ["begin"]:
                recording = []
            elif kind == "record" and rest[:1] == ["end"] and recording is not None:
                result.allocations = "\n".join(recording)
                recording = None
            elif kind == "done":
                result.finished = True
            elif kind in ("halted", "fault", "no-invoke", "invoke-failed", "sample-mismatch"):
                result.problems.append(" ".join([kind, *rest]))
        except (ValueError, KeyError):
            result.problems.append(f"unreadable harness line: {line[:120]}")
    return result


def plugin_path(cancel: threading.Event | None = None) -> Path | None:
    """The instruction-counting plugin, built once with the host C compiler (cached)."""
    from tinyforge.device.build import shim_dir

    source = shim_dir() / "insn_plugin.c"
    for cc in ("cc", "gcc", "clang"):
        version = _host_compiler(cc)
        if version:
            break
    else:
        return None
    digest = hashlib.sha256(f"{source.read_text('utf-8')}\n{version}".encode()).hexdigest()
    out = cache_root() / "qemu-plugin" / f"insn_{digest[:12]}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.so")
    run = run_tool([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(source)], cancel=cancel)
    if run.returncode != 0:
        return None
    tmp.replace(out)
    return out


def _host_compiler(cc: str) -> str | None:
    import shutil

    if shutil.which(cc) is None:
        return None
    return compiler_version(cc)


def run_firmware(
    elf: Path,
    core: Core,
    *,
    cwd: Path,
    cancel: threading.Event | None = None,
    # A big model on reference kernels runs ~1.4 G instructions per sample: minutes in all.
    timeout: float = 900,
    count_instructions: bool = True,
) -> RunResult:
    cmd = ["qemu-system-arm", "-M", core.machine, "-nographic", "-monitor", "none"]
    cmd += ["-serial", "none", "-semihosting-config", "enable=on,target=native"]
    cmd += ["-kernel", str(elf)]
    plugin = plugin_path(cancel) if count_instructions else None
    if plugin is not None:
        marks = symbol_addresses(elf, "tinyforge_invoke_begin", "tinyforge_invoke_end")
        begin, end = marks.get("tinyforge_invoke_begin"), marks.get("tinyforge_invoke_end")
        if begin is not None and end is not None:
            cmd += ["-plugin", f"{plugin},begin={begin:#x},end={end:#x}", "-d", "plugin"]
    try:
        run = run_tool(cmd, cwd=cwd, cancel=cancel, timeout=timeout, stop_on=b"\nHALTED")
    except TimeoutError as exc:
        raise StageError(
            "verify",
            f"The firmware did not finish on the emulated {core.machine_core} within "
            f"{timeout:.0f} s: it may wait for input or loop forever outside loop().",
        ) from exc
    result = parse_run(run.text)
    result.seconds = run.seconds
    return result


def smallest_arena(
    elf: Path,
    core: Core,
    *,
    works: int,
    fails: int,
    work: Path,
    cancel: threading.Event | None = None,
) -> int:
    """The smallest arena (16-byte steps) that allocates and runs, by bisection between a size
    that `works` and one that `fails`, one emulator run per size (see harness.cpp)."""
    probe_dir = work / "probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    while works - fails > 16:
        mid = ((works + fails) // 2) // 16 * 16
        if mid <= fails:
            break
        if probe_once(elf, core, mid, probe_dir, cancel):
            works = mid
        else:
            fails = mid
    return works


def probe_once(
    elf: Path, core: Core, size: int, probe_dir: Path, cancel: threading.Event | None = None
) -> bool:
    (probe_dir / "probe.txt").write_text(f"{size}\n", encoding="ascii")
    result = run_firmware(elf, core, cwd=probe_dir, cancel=cancel, count_instructions=False)
    return bool(result.probe_ok) and not result.problems


def record_allocations(
    elf: Path, core: Core, size: int, work: Path, cancel: threading.Event | None = None
) -> str:
    """RecordingMicroAllocator's per-kind report of the arena on this core ("" if none)."""
    probe_dir = work / "probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    (probe_dir / "probe.txt").write_text(f"{size} record\n", encoding="ascii")
    result = run_firmware(elf, core, cwd=probe_dir, cancel=cancel, count_instructions=False)
    return result.allocations
