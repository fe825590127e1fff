"""TFLM source trees: where one is, what it holds, and which of its files a model needs.

Two layouts are understood:
- a TFLM source kit (TFLM's own tree with `lists/*.txt` naming the files TFLM's Makefile
  builds for Cortex-M, reference and CMSIS-NN kernels; `VERSIONS` naming the commits);
- an Arduino library packaging of TFLM (`library.properties` + `src/`, e.g.
  Arduino_TensorFlowLite or Chirale_TensorFlowLite, as PlatformIO installs it into
  `.pio/libdeps/ENV/`): every `.cpp`/`.c` under `src/` is the library, as the Arduino build
  compiles it, with CMSIS-NN kernels in place of the reference ones it replaces.

Only the kernels a model uses are compiled: a kernel file is chosen when it defines the
`Register_OP()` of one of the model's operators, together with its `OP_common` helpers and the
helpers every kernel shares.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from tinyforge.errors import TinyForgeError

# Test scaffolding in TFLM's core lists: never referenced by an application, slow to compile.
_TEST_ONLY = re.compile(r"(^|/)(test_helpers|test_helper_custom_ops|all_ops_resolver)\.(cc|cpp)$")
# Parts of the Arduino packaging that are not TFLM: board peripherals, serial test harness,
# the audio front end (it needs kissfft), examples.
_ARDUINO_SKIP = re.compile(r"^src/(peripherals|test_over_serial|examples)/|/experimental/")
# `TFLMRegistration Register_CONV_2D() {` (2024+) or `TfLiteRegistration Register_…` (older).
_REGISTER_DEF = re.compile(r"^[^\n;(){}]*\bRegister_([A-Z0-9_]+)\(\)\s*\{", re.M)
_KERNELS_DIR = "tensorflow/lite/micro/kernels/"
_ARM_NAME = re.compile(r"\barm_\w+")
# A C function definition starts its line with the return type (calls are indented).
_C_DEFINITION = re.compile(r"^(?:[A-Za-z_]\w*\s+)+\**(arm_\w+)\s*\(", re.M)


class TflmSourceError(TinyForgeError):
    """No usable TFLM source tree."""


@dataclass(frozen=True)
class SourceFile:
    path: Path  # absolute
    rel: str  # relative to the include root, for object names and the report

    @property
    def is_c(self) -> bool:
        return self.path.suffix == ".c"


@dataclass
class TflmSource:
    """One TFLM source tree and how to compile it."""

    kind: str  # "kit" | "arduino"
    root: Path  # the include root (the kit folder, or the library's src/)
    name: str  # for the report: "TFLM 90b983c (2026-08-20)"
    commit: str
    kernels: tuple[str, ...]  # kernel sets it can build: "cmsis_nn", "reference"
    include_dirs: list[Path]
    _core: list[SourceFile] = field(repr=False)
    _kernel_srcs: dict[str, list[SourceFile]] = field(repr=False)
    _third_party: dict[str, list[SourceFile]] = field(repr=False)

    def defines(self, kernels: str) -> list[str]:
        flags = ["-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DTF_LITE_MCU_DEBUG_LOG"]
        flags.append("-DKERNELS_OPTIMIZED_FOR_SPEED")
        if self.kind == "arduino":
            # The Arduino packaging guards its Arduino-specific code with ARDUINO, which the
            # Arduino build defines for every library source.
            flags.append("-DARDUINO=10819")
        if kernels == "cmsis_nn":
            # As TFLM's Makefile: CMSIS-NN without its float16/float32 paths.
            flags += ["-DCMSIS_NN", "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0"]
        return flags

    @cached_property
    def identity(self) -> str:
        """Changes when any source file changes: part of the object cache key."""
        digest = hashlib.sha256(f"{self.kind}:{self.commit}".encode())
        for src in sorted(self._all_files(), key=lambda s: s.rel):
            stat = src.path.stat()
            digest.update(f"{src.rel}:{stat.st_size}:{int(stat.st_mtime)}".encode())
        return digest.hexdigest()[:16]

    def _all_files(self) -> Iterable[SourceFile]:
        yield from self._core
        for files in self._kernel_srcs.values():
            yield from files
        for files in self._third_party.values():
            yield from files

    def core_sources(self) -> list[SourceFile]:
        return list(self._core)

    def third_party_sources(
        self, kernels: str, users: Iterable[SourceFile] | None = None
    ) -> list[SourceFile]:
        """CMSIS-NN's C files, or only those `users` (kernel files) reach.

        CMSIS-NN names each file after the function it defines (arm_convolve_s8.c), so the
        `arm_*` names a kernel mentions, followed through the files they name, are what it
        needs: a third of the library for a small CNN. The build falls back to every file
        when the linker still misses one.
        """
        files = list(self._third_party.get(kernels, []))
        if users is None:
            return files
        by_stem = {src.path.stem: src for src in files}
        # Files defining more than their namesake (arm_convolve_get_buffer_sizes_s8.c).
        for src in files:
            for name in _C_DEFINITION.findall(_read(src.path)):
                by_stem.setdefault(name, src)
        todo = {name for src in users for name in _ARM_NAME.findall(_read(src.path))}
        chosen: dict[str, SourceFile] = {}
        while todo:
            name = todo.pop()
            found = by_stem.get(name)
            if found is None or found.path.stem in chosen:
                continue
            src = found
            chosen[src.path.stem] = src
            todo |= set(_ARM_NAME.findall(_read(src.path))) - set(chosen) - {name}
        return sorted(chosen.values(), key=lambda s: s.rel)

    def all_kernel_sources(self, kernels: str) -> list[SourceFile]:
        return list(self._kernel_srcs[kernels])

    def kernel_sources(self, kernels: str, ops: Iterable[str]) -> dict[str, list[SourceFile]]:
        """Kernel files per operator of the model (plus "(shared)" helpers), nothing else."""
        wanted = {op.upper() for op in ops}
        files = self._kernel_srcs[kernels]
        registers = {src.rel: set(_REGISTER_DEF.findall(_read(src.path))) for src in files}
        chosen: dict[str, list[SourceFile]] = {}
        stems: dict[str, str] = {}
        for src in files:
            found = registers[src.rel] & wanted
            if found:
                op = sorted(found)[0]
                chosen.setdefault(op, []).append(src)
                stems[Path(src.rel).stem] = op
        op_stems = {Path(s.rel).stem for s in files if registers[s.rel]}
        for src in files:
            if registers[src.rel]:
                continue
            stem = Path(src.rel).stem
            owner = next((stems[s] for s in stems if stem.startswith(s + "_")), None)
            if owner is not None:
                chosen[owner].append(src)
            elif not any(stem.startswith(s + "_") for s in op_stems):
                # kernel_util, micro_tensor_utils, decompress…: shared by every kernel.
                chosen.setdefault("(shared)", []).append(src)
        return chosen

    def missing_ops(self, kernels: str, ops: Iterable[str]) -> list[str]:
        have = self.kernel_sources(kernels, ops)
        return sorted({op.upper() for op in ops} - set(have))


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _files(root: Path, rels: Iterable[str]) -> list[SourceFile]:
    return [SourceFile(root / rel, rel) for rel in rels if rel and not _TEST_ONLY.search(rel)]


def load_kit(root: Path) -> TflmSource:
    """A TFLM source kit: TFLM's tree with lists/*.txt (see ../shared/vendor/tflm-cortex-m)."""
    lists = root / "lists"

    def listed(name: str) -> list[str]:
        return [ln.strip() for ln in (lists / name).read_text("utf-8").splitlines() if ln.strip()]

    commit = _kit_commit(root)
    kernel_srcs = {
        "reference": _files(root, listed("kernel_srcs_reference.txt")),
        "cmsis_nn": _files(root, listed("kernel_srcs_cmsis_nn.txt")),
    }
    third_party = {"cmsis_nn": _files(root, listed("cmsis_nn_c_srcs.txt"))}
    tp = root / "third_party"
    includes = [root, tp / "flatbuffers" / "include", tp / "gemmlowp", tp / "ruy"]
    includes += [tp / "cmsis", tp / "cmsis_nn", tp / "cmsis" / "CMSIS" / "Core" / "Include"]
    includes.append(tp / "cmsis_nn" / "Include")
    return TflmSource(
        kind="kit",
        root=root,
        name=f"TFLM {commit[:7]}{_kit_date(root)}",
        commit=commit,
        kernels=("cmsis_nn", "reference"),
        include_dirs=[p for p in includes if p.is_dir()],
        _core=_files(root, listed("core_srcs.txt")),
        _kernel_srcs=kernel_srcs,
        _third_party=third_party,
    )


def _kit_commit(root: Path) -> str:
    versions = root / "VERSIONS"
    if versions.is_file():
        m = re.search(r"^tflite-micro\s+([0-9a-f]{7,40})", versions.read_text("utf-8"), re.M)
        if m:
            return m.group(1)
    return "unknown"


def _kit_date(root: Path) -> str:
    versions = root / "VERSIONS"
    if versions.is_file():
        m = re.search(r"^tflite-micro\s+\S+\s+(\d{4}-\d\d-\d\d)", versions.read_text("utf-8"), re.M)
        if m:
            return f" ({m.group(1)})"
    return ""


def load_arduino_library(lib: Path) -> TflmSource:
    """An Arduino packaging of TFLM: library.properties + src/ compiled whole by Arduino."""
    props = _properties(lib / "library.properties")
    version = props.get("version", "?")
    commit = _arduino_commit(lib) or version
    return load_tree(
        lib / "src",
        kind="arduino",
        name=f"{props.get('name', lib.name)} {version} ({commit[:7]})",
        commit=commit,
    )


def load_tree(src: Path, *, kind: str = "tree", name: str = "", commit: str = "") -> TflmSource:
    """A TFLM source tree without lists: every .cc/.cpp/.c under `src` (as an Arduino build, or
    TFLM's create_tflm_tree.py export). Where an optimised kernel in kernels/cmsis_nn/ has a
    reference twin in kernels/, the two kernel sets are told apart; where the reference one is
    missing (the Arduino packaging replaced it), only the CMSIS-NN set can be built."""
    rels = []
    for dirpath, _dirs, names in os.walk(src, followlinks=True):
        for filename in names:
            if filename.endswith((".cpp", ".cc", ".c")):
                rel = Path(dirpath, filename).relative_to(src).as_posix()
                if not _ARDUINO_SKIP.search("src/" + rel):
                    rels.append(rel)
    rels.sort()
    kernel = [r for r in rels if r.startswith(_KERNELS_DIR)]
    third = [r for r in rels if r.startswith("third_party/") and r.endswith(".c")]
    core = [r for r in rels if r not in kernel and r not in third]
    optimised = [r for r in kernel if r.startswith(_KERNELS_DIR + "cmsis_nn/")]
    plain = [r for r in kernel if r.count("/") == _KERNELS_DIR.count("/")]
    plain_stems = {Path(r).stem for r in plain}
    optimised_stems = {Path(r).stem for r in optimised}
    kernel_srcs = {
        "cmsis_nn": _files(
            src, optimised + [r for r in plain if Path(r).stem not in optimised_stems]
        )
    }
    kernels: tuple[str, ...] = ("cmsis_nn",) if optimised else ()
    if plain and optimised_stems <= plain_stems:
        kernel_srcs["reference"] = _files(src, plain)
        kernels += ("reference",)
    if not optimised:
        kernel_srcs["cmsis_nn"] = []
    if not kernels:
        raise TflmSourceError(f"{src} has no TFLM kernels (tensorflow/lite/micro/kernels/).")
    tp = src / "third_party"
    includes = [src, tp / "flatbuffers" / "include", tp / "gemmlowp", tp / "ruy"]
    includes += [tp / "cmsis", tp / "cmsis_nn", tp / "cmsis" / "CMSIS" / "Core" / "Include"]
    includes.append(tp / "cmsis_nn" / "Include")
    return TflmSource(
        kind=kind,
        root=src,
        name=name or f"TFLM tree {src}",
        commit=commit or "unknown",
        kernels=kernels,
        include_dirs=[p for p in includes if p.is_dir()],
        _core=_files(src, core),
        _kernel_srcs=kernel_srcs,
        _third_party={"cmsis_nn": _files(src, third)},
    )


def _properties(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text("utf-8", errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip()
    return out


def _arduino_commit(lib: Path) -> str | None:
    versions = lib / "VERSIONS"
    if versions.is_file():
        m = re.search(r"\bcommit\s*\n?\s*([0-9a-f]{40})", versions.read_text("utf-8"))
        if m:
            return m.group(1)
    return None


def load_source(path: Path) -> TflmSource:
    """Whatever TFLM tree `path` is: a kit, an Arduino library, or a folder holding one."""
    path = Path(path).expanduser()
    if (path / "lists" / "core_srcs.txt").is_file():
        return load_kit(path)
    if (path / "library.properties").is_file() and (path / "src").is_dir():
        return load_arduino_library(path)
    if (path / "src" / "tensorflow" / "lite" / "micro").is_dir():
        return load_arduino_library(path)
    if (path / "tensorflow" / "lite" / "micro").is_dir():
        return load_tree(path)
    raise TflmSourceError(
        f"{path} is not a TFLM source tree: expected a TFLM kit (with lists/core_srcs.txt), an "
        "Arduino TFLM library (library.properties and src/tensorflow/lite/micro) or a TFLM "
        "tree (tensorflow/lite/micro)."
    )


def find_source(project_dir: Path, explicit: Path | None = None) -> TflmSource:
    """The TFLM source for a project, in order: `--tflm` / TINYFORGE_TFLM_DIR, the library
    PlatformIO installed into the project's `.pio/libdeps/`, a copy in the user's cache."""
    if explicit is not None:
        return load_source(explicit)
    env = os.environ.get("TINYFORGE_TFLM_DIR")
    if env:
        return load_source(Path(env))
    libdeps = project_dir / ".pio" / "libdeps"
    if libdeps.is_dir():
        for lib in sorted(libdeps.glob("*/*")):
            if (lib / "src" / "tensorflow" / "lite" / "micro").is_dir():
                return load_arduino_library(lib)
    from tinyforge.device.cache import cache_root

    cached = cache_root() / "tflm-source"
    if cached.is_dir():
        return load_source(cached)
    raise TflmSourceError(
        "No TFLite Micro source found: pass --tflm DIR or set TINYFORGE_TFLM_DIR to a TFLM "
        f"source tree, run `pio run` once so the project's TFLM library is in .pio/libdeps/, or "
        f'put one in {cached} (see the README, "Verify on an emulated board").'
    )
