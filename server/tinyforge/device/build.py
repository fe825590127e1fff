"""Compile a project's firmware for the board's core: TFLM (cached) + the project's own code.

The project's `src/*.cpp` and `lib/*/*.cc|cpp` are compiled as they are, with TinyForge's
Arduino stand-in (`shim/`) on the include path and its harness linked beside them; TFLM's core,
the kernels of the model's operators and (for CMSIS-NN) the CMSIS-NN library come from the
object cache. One archive holds the TFLM objects, so the linker takes only what is referenced,
as on the board.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from tinyforge.device.cache import (
    CompileJob,
    compile_all,
    compiler_version,
    first_error,
    object_dir,
    run_tool,
)
from tinyforge.device.cores import Core
from tinyforge.device.source import SourceFile, TflmSource
from tinyforge.errors import StageError, TinyForgeError

CROSS = "arm-none-eabi-"
# The sketch's Invoke() calls go through the harness (see shim/harness.cpp).
INVOKE_SYMBOL = "_ZN6tflite16MicroInterpreter6InvokeEv"
# Umbrella headers of the Arduino TFLM libraries: each only makes the Arduino IDE build the
# library (Arduino_TensorFlowLite's says so itself), and some pull in board peripherals. The
# verification build gives the sketch an empty one of each and compiles TFLM itself.
UMBRELLA_HEADERS = (
    "Chirale_TensorFlowLite.h",
    "TensorFlowLite.h",
    "TensorFlowLite_ESP32.h",
    "Arduino_TensorFlowLite.h",
)


class ToolchainError(TinyForgeError):
    """The cross-compiler, its C library or the emulator is missing."""


@dataclass
class ObjectInfo:
    """What an object file of the image is, for the flash/RAM split."""

    part: str  # "TFLM runtime" | "kernel" | "CMSIS-NN" | "application" | "model" | "harness"
    op: str | None = None


@dataclass
class FirmwareBuild:
    elf: Path
    map_file: Path
    objects: dict[str, ObjectInfo]  # object (member) name → what it is
    compiled_tflm: int  # TFLM objects compiled now (0: all from the cache)
    tflm_objects: int
    cache_dir: Path
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def shim_dir() -> Path:
    return Path(str(resources.files("tinyforge.device").joinpath("shim")))


def check_toolchain() -> None:
    """One sentence naming what is missing and how to get it."""
    missing = [
        tool
        for tool in (f"{CROSS}g++", f"{CROSS}gcc", f"{CROSS}ar", "qemu-system-arm")
        if shutil.which(tool) is None
    ]
    if missing:
        raise ToolchainError(
            f"No {' or '.join(missing)} here, so the firmware cannot be built and run on an "
            "emulated core: install them (Debian/Ubuntu: apt-get install gcc-arm-none-eabi "
            "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm)."
        )


def _flags(core: Core, source: TflmSource, kernels: str) -> list[str]:
    # As TFLM's Makefile for Cortex-M (cortex_m_generic / cortex_m_qemu targets).
    return [
        *core.arch_flags,
        "-funsigned-char",
        "-mlittle-endian",
        "-fomit-frame-pointer",
        "-ffunction-sections",
        "-fdata-sections",
        "-fno-unwind-tables",
        "-fno-asynchronous-unwind-tables",
        "-fmessage-length=0",
        *source.defines(kernels),
    ]


def _cxx_flags() -> list[str]:
    return ["-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"]


def _includes(source: TflmSource) -> list[str]:
    return [f"-I{p}" for p in source.include_dirs]


def _obj_name(src: SourceFile) -> str:
    # Unique inside the archive and readable in the map: micro__kernels__cmsis_nn__conv.o
    rel = re.sub(r"^tensorflow/lite/", "", src.rel)
    return re.sub(r"\.(cc|cpp|c)$", "", rel).replace("/", "__") + ".o"


def tflm_objects(
    source: TflmSource,
    core: Core,
    kernels: str,
    ops: list[str],
    *,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    all_third_party: bool = False,
) -> tuple[Path, dict[str, ObjectInfo], list[Path], int]:
    """Compile (or take from the cache) what the model needs of TFLM.

    Returns the cache folder, what each object is, the object paths and how many were compiled.
    """
    cxx, cc = f"{CROSS}g++", f"{CROSS}gcc"
    base = _flags(core, source, kernels)
    key = [
        f"source={source.identity}",
        f"core={core.key}",
        f"kernels={kernels}",
        f"flags={' '.join(base)}",
        f"cxx={compiler_version(cxx)}",
    ]
    out = object_dir(key)
    includes = _includes(source)
    # As TFLM's Makefile: the core for size (-Os), kernels and CMSIS-NN for speed (-O2).
    core_argv = [cxx, *_cxx_flags(), *base, "-Os", *includes]
    kernel_argv = [cxx, *_cxx_flags(), *base, "-O2", *includes]
    c_argv = [cc, "-std=c17", *base, "-O2", *includes]
    jobs: list[CompileJob] = []
    info: dict[str, ObjectInfo] = {}

    def add(src: SourceFile, argv: list[str], what: ObjectInfo) -> None:
        name = _obj_name(src)
        info[name] = what
        jobs.append(CompileJob(src.path, out / name, argv))

    for src in source.core_sources():
        add(src, c_argv if src.is_c else core_argv, ObjectInfo("TFLM runtime"))
    kernel_files: list[SourceFile] = []
    for op, files in source.kernel_sources(kernels, ops).items():
        for src in files:
            what = ObjectInfo("TFLM runtime") if op == "(shared)" else ObjectInfo("kernel", op)
            add(src, c_argv if src.is_c else kernel_argv, what)
            kernel_files.append(src)
    users = None if all_third_party else kernel_files
    for src in source.third_party_sources(kernels, users):
        add(src, c_argv, ObjectInfo("CMSIS-NN"))
    (out / "KEY").parent.mkdir(parents=True, exist_ok=True)
    (out / "KEY").write_text("\n".join(key) + "\n", encoding="utf-8")
    compiled = compile_all(jobs, cancel=cancel, on_done=on_progress)
    return out, info, [job.obj for job in jobs], compiled


def project_sources(project_dir: Path) -> list[Path]:
    """The project's own code as PlatformIO builds it: src/ and lib/<name>/ (and its src/)."""
    found: list[Path] = []
    for folder in [project_dir / "src", *sorted((project_dir / "lib").glob("*"))]:
        for sub in (folder, folder / "src"):
            if sub.is_dir():
                found += sorted(
                    p for p in sub.iterdir() if p.suffix in (".cpp", ".cc", ".c") and p.is_file()
                )
    return found


def _project_includes(project_dir: Path) -> list[str]:
    dirs = [project_dir / "include", project_dir / "src"]
    for lib in sorted((project_dir / "lib").glob("*")):
        dirs += [lib, lib / "src"]
    return [f"-I{d}" for d in dirs if d.is_dir()]


def build_firmware(
    project_dir: Path,
    work: Path,
    *,
    source: TflmSource,
    core: Core,
    kernels: str,
    ops: list[str],
    resolver_methods: list[str],
    sample_bytes: int,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> FirmwareBuild:
    check_toolchain()
    work.mkdir(parents=True, exist_ok=True)
    cache, objects, tflm_objs, compiled = tflm_objects(
        source,
        core,
        kernels,
        ops,
        cancel=cancel,
        on_progress=on_progress,
    )
    archive = work / "libtflm.a"
    _archive(archive, tflm_objs, cancel)

    # The harness's resolver: the model's operators, as the sketch registers them.
    compat = work / "compat"
    compat.mkdir(exist_ok=True)
    ops_h = [
        "// Generated by tinyforge verify: the model's operators for the harness's probe.",
        "#pragma once",
        f"#define TINYFORGE_NUM_OPS {max(1, len(resolver_methods))}",
        "#define TINYFORGE_REGISTER_OPS(r) do { "
        + " ".join(f"(r).{m}();" for m in resolver_methods)
        + " } while (0)",
        "",
    ]
    (compat / "tinyforge_ops.h").write_text("\n".join(ops_h), encoding="utf-8")
    for header in UMBRELLA_HEADERS:
        (compat / header).write_text(
            "// Empty stand-in for the Arduino library's umbrella header (tinyforge verify).\n",
            encoding="utf-8",
        )

    shim = shim_dir()
    base = _flags(core, source, kernels)
    sketch_defines = ["-DARDUINO=10819", "-DTINYFORGE_VERIFY=1"]
    includes = [f"-I{compat}", f"-I{shim}", *_project_includes(project_dir), *_includes(source)]
    cxx = [f"{CROSS}g++", "-std=gnu++17", *_cxx_flags()[1:], *base, "-Os", *sketch_defines]
    units: list[tuple[Path, str, ObjectInfo, list[str]]] = []
    for src in project_sources(project_dir):
        rel = src.relative_to(project_dir)
        is_model = rel.parts[0] == "lib" and "model" in rel.parts[1].lower()
        name = "project__" + "__".join(rel.with_suffix(".o").parts)
        units.append((src, name, ObjectInfo("model" if is_model else "application"), []))
    harness_defines = [f"-DTINYFORGE_SAMPLE_BYTES={int(sample_bytes)}"]
    units.append(
        (shim / "harness.cpp", "tinyforge__harness.o", ObjectInfo("harness"), harness_defines)
    )
    units.append((shim / "arduino_shim.cpp", "tinyforge__arduino.o", ObjectInfo("harness"), []))
    units.append((shim / "startup.c", "tinyforge__startup.o", ObjectInfo("harness"), []))
    # The headers each kind of unit can include: a change recompiles those units only (the
    # model's header changes with every model, TinyForge's stand-in only with TinyForge).
    shim_headers = _header_digest([shim])
    harness_headers = shim_headers + _header_digest([compat])
    project_headers = harness_headers + _header_digest(_project_dirs(project_dir))

    def argv_for(src: Path, extra: list[str]) -> list[str]:
        if src.suffix == ".c":
            return [f"{CROSS}gcc", "-std=gnu17", *base, "-Os", *includes, *extra]
        return [*cxx, *includes, *extra]

    app_objs: list[Path] = []
    todo: list[tuple[Path, Path, list[str]]] = []
    for src, name, part, extra in units:
        argv = argv_for(src, extra)
        headers = (
            project_headers
            if name.startswith("project__")
            else harness_headers
            if name == "tinyforge__harness.o"
            else shim_headers
        )
        key = hashlib.sha256(
            "\0".join([*argv, headers, src.read_bytes().hex()]).encode()
        ).hexdigest()[:20]
        obj = work / "objects" / f"{name[:-2]}.{key}.o"
        objects[obj.name] = part
        app_objs.append(obj)
        if not obj.is_file():
            todo.append((src, obj, argv))

    def compile_unit(src: Path, obj: Path, argv: list[str]) -> None:
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_suffix(".tmp")
        try:
            run = run_tool([*argv, "-c", str(src), "-o", str(tmp)], cancel=cancel, timeout=300)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if run.returncode != 0:
            tmp.unlink(missing_ok=True)
            rel = src.relative_to(project_dir) if src.is_relative_to(project_dir) else src.name
            raise StageError(
                "verify",
                f"{rel} does not compile against {source.name} for {core.name}: "
                f"{first_error(run.text)}",
                run.text[-4000:],
            )
        tmp.replace(obj)

    # The project's own files and the harness, side by side (each includes TFLM's headers).
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify-cc") as pool:
        for future in [pool.submit(compile_unit, *unit) for unit in todo]:
            future.result()
    _prune(work / "objects", keep=set(app_objs))

    elf = work / "firmware.elf"
    map_file = work / "firmware.map"
    link = [
        f"{CROSS}g++",
        *core.arch_flags,
        "--specs=rdimon.specs",
        "-nostartfiles",
        "-Wl,--gc-sections",
        f"-Wl,--wrap={INVOKE_SYMBOL}",
        f"-T{shim / 'mps2.ld'}",
        f"-Wl,-Map={map_file}",
        *map(str, app_objs),
        str(archive),
        "-lm",
        "-o",
        str(elf),
    ]
    run = run_tool(link, cancel=cancel, timeout=300)
    if run.returncode != 0 and re.search(r"undefined reference to `arm_", run.text):
        # A CMSIS-NN function defined in a file named otherwise: take the whole library.
        cache, tflm_info, tflm_objs, more = tflm_objects(
            source, core, kernels, ops, cancel=cancel, all_third_party=True
        )
        objects.update(tflm_info)
        compiled += more
        _archive(archive, tflm_objs, cancel)
        run = run_tool(link, cancel=cancel, timeout=300)
    if run.returncode != 0:
        raise StageError(
            "verify",
            f"The firmware does not link against {source.name} for {core.name}: "
            f"{first_error(run.text)}",
            run.text[-4000:],
        )
    return FirmwareBuild(
        elf=elf,
        map_file=map_file,
        objects=objects,
        compiled_tflm=compiled,
        tflm_objects=len(tflm_objs),
        cache_dir=cache,
    )


def _project_dirs(project_dir: Path) -> list[Path]:
    return [Path(flag[2:]) for flag in _project_includes(project_dir)]


def _header_digest(dirs: list[Path]) -> str:
    digest = hashlib.sha256()
    for folder in dirs:
        for header in sorted(folder.glob("*.h*")) if folder.is_dir() else []:
            digest.update(header.name.encode() + b"\0" + header.read_bytes())
    return digest.hexdigest()


def _prune(folder: Path, keep: set[Path]) -> None:
    """Objects of earlier versions of the project's files: only the current ones stay."""
    for obj in folder.glob("*.o"):
        if obj not in keep:
            obj.unlink(missing_ok=True)


def _archive(archive: Path, objects: list[Path], cancel: threading.Event | None) -> None:
    archive.unlink(missing_ok=True)
    _tool([f"{CROSS}ar", "rcs", str(archive), *map(str, objects)], cancel, "archive TFLM")


def _tool(cmd: list[str], cancel: threading.Event | None, what: str) -> None:
    run = run_tool(cmd, cancel=cancel, timeout=300)
    if run.returncode != 0:
        raise StageError("verify", f"Could not {what}: {first_error(run.text)}", run.text)


def symbol_addresses(elf: Path, *symbols: str) -> dict[str, int]:
    """Addresses of the named symbols in an image (one `nm` for all of them)."""
    wanted = set(symbols)
    found: dict[str, int] = {}
    for line in run_tool([f"{CROSS}nm", str(elf)], timeout=60).text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in wanted:
            found[parts[2]] = int(parts[0], 16)
    return found
