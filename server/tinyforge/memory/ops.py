"""Which ops the TFLM build in the installed tflite-micro package can run, asked of TFLM.

There is no hand-written list here. A child process builds, for every builtin op of TFLM's own
schema, a tiny model whose first op is the probed one and whose second op is one TFLM surely
lacks, then lets the real interpreter allocate it. TFLM resolves every op of a model before it
runs any kernel and stops at the first op its resolver lacks, printing
"Didn't find op for builtin opcode 'X'": if it names the probed op, TFLM lacks it; if it got
past it to the sentinel, TFLM has it. No kernel of a probed op is ever run. The ~200 probes
take about 0.2 s including the child's start; the answer is cached on disk per tflite-micro
version, so later calls cost a file read.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import util as importlib_util
from pathlib import Path

from tinyforge.errors import StageError
from tinyforge.memory import measure
from tinyforge.memory.tflite_model import TfliteModel

CACHE_FORMAT = 1
_MAX_CHILD_RUNS = 6
_PROBE_TIMEOUT = 120.0


@dataclass(frozen=True)
class TflmOpSupport:
    tflite_micro_version: str
    supported: frozenset[str]  # builtin op names TFLM's resolver has, e.g. 'CONV_2D'
    missing: frozenset[str]  # builtin op names it lacks
    unknown: dict[str, str] = field(default_factory=dict)  # op → why the probe was inconclusive
    custom: dict[str, bool | None] = field(default_factory=dict)  # custom code → has it


_memo: dict[Path, TflmOpSupport] = {}


def cache_dir() -> Path:
    """Per-user cache directory: $TINYFORGE_CACHE_DIR, else $XDG_CACHE_HOME/tinyforge."""
    explicit = os.environ.get("TINYFORGE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinyforge"


def tflm_supported_ops(*, refresh: bool = False) -> frozenset[str]:
    """Builtin op names ('CONV_2D', 'FULLY_CONNECTED', ...) the installed TFLM can resolve."""
    return tflm_op_support(refresh=refresh).supported


def tflm_op_support(*, refresh: bool = False, custom: Iterable[str] = ()) -> TflmOpSupport:
    """The full probe result; `custom` adds custom op codes to probe (cached as well)."""
    path = _cache_path()
    wanted_custom = sorted(set(custom))
    support = None if refresh else (_memo.get(path) or _read_cache(path))
    if support is not None and all(name in support.custom for name in wanted_custom):
        _memo[path] = support
        return support
    known_custom = dict(support.custom) if support else {}
    support = _probe(sorted(set(wanted_custom) | set(known_custom)))
    _memo[path] = support
    _write_cache(path, support)
    return support


def unsupported_ops(model: TfliteModel) -> list[str]:
    """Ops of the model's subgraph 0 that the installed TFLM cannot resolve, in first-use order.

    Builtins are checked against the probed set; custom ops ('CUSTOM:<code>') are probed by
    their code, so TFLM's own custom kernels (e.g. TFLite_Detection_PostProcess) pass.
    """
    names = list(model.op_counts())
    customs = [n.removeprefix("CUSTOM:") for n in names if n.startswith("CUSTOM:")]
    support = tflm_op_support(custom=customs)
    result = []
    for name in names:
        if name.startswith("CUSTOM:"):
            if not support.custom.get(name.removeprefix("CUSTOM:")):
                result.append(name)
        elif name not in support.supported:
            result.append(name)
    return result


# --- probing ---------------------------------------------------------------------------------


def _probe(custom: list[str]) -> TflmOpSupport:
    skip: list[str] = []
    crashed: dict[str, str] = {}
    deadline = time.monotonic() + _PROBE_TIMEOUT
    label = Path("tflite-micro op probe")
    for _ in range(_MAX_CHILD_RUNS):
        args = ["ops"]
        for name in custom:
            args += ["--custom", name]
        for name in skip:
            args += ["--skip", name]
        run = measure._run_child(args, deadline, _PROBE_TIMEOUT, label)
        result = run.result()
        if result is not None and result.get("ok"):
            supported = frozenset(result["supported"])
            if not supported:
                # No op at all got past the lookup: the probe model itself is not accepted, so
                # the answer says nothing about TFLM's ops and must not be cached.
                raise StageError(
                    measure.STAGE,
                    "Asking TFLM which ops it supports gave no answer: the probe models were "
                    "rejected before any op lookup.",
                    log_tail=measure._tail(run.stderr),
                )
            unknown = {**result.get("unknown", {}), **crashed}
            return TflmOpSupport(
                tflite_micro_version=str(result.get("tflite_micro_version", "")),
                supported=supported,
                missing=frozenset(result["missing"]),
                unknown=unknown,
                custom={k: v for k, v in result.get("custom", {}).items()},
            )
        probes = [e["op"] for e in run.events if e.get("event") == "probe"]
        if not probes:
            raise StageError(
                measure.STAGE,
                "Could not ask TFLM which ops it supports: its child process failed before "
                "probing any op.",
                log_tail=measure._tail(run.stderr),
            )
        # An op whose probe killed the process is neither supported nor missing for sure;
        # skip it and probe the rest in a fresh child.
        last = probes[-1]
        crashed[last] = f"probing crashed the TFLM process (exit {run.returncode})"
        if last.startswith("CUSTOM:"):
            custom = [c for c in custom if c != last.removeprefix("CUSTOM:")]
        else:
            skip.append(last)
    raise StageError(
        measure.STAGE,
        f"Asking TFLM which ops it supports crashed {_MAX_CHILD_RUNS} times "
        f"(last at {', '.join(crashed) or 'start-up'}).",
    )


# --- cache -----------------------------------------------------------------------------------


def _runtime_library_size() -> int:
    """Size of TFLM's _runtime.so, found without importing tflite_micro (0 if not found)."""
    spec = importlib_util.find_spec("tflite_micro")
    if spec is None or not spec.submodule_search_locations:
        return 0
    for location in spec.submodule_search_locations:
        library = Path(location) / "python" / "tflite_micro" / "_runtime.so"
        if library.is_file():
            return library.stat().st_size
    return 0


def _cache_path() -> Path:
    # Keyed by the package version and the library size, so a different TFLM build (even a
    # local rebuild under the same version) is probed anew.
    version = measure.tflm_package_version()
    safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in version)
    return cache_dir() / "tflm-ops" / f"{safe}-{_runtime_library_size()}.json"


def _read_cache(path: Path) -> TflmOpSupport | None:
    try:
        data = json.loads(path.read_text())
        if data.get("format") != CACHE_FORMAT:
            return None
        return TflmOpSupport(
            tflite_micro_version=str(data["tflite_micro_version"]),
            supported=frozenset(data["supported"]),
            missing=frozenset(data["missing"]),
            unknown=dict(data.get("unknown", {})),
            custom=dict(data.get("custom", {})),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        # A missing, partial or foreign file is simply probed again.
        return None


def _write_cache(path: Path, support: TflmOpSupport) -> None:
    data = {
        "format": CACHE_FORMAT,
        "tflite_micro_version": support.tflite_micro_version,
        "supported": sorted(support.supported),
        "missing": sorted(support.missing),
        "unknown": support.unknown,
        "custom": support.custom,
    }
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so that a concurrent reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tflm-ops-", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
        os.replace(tmp, path)
    except OSError:
        # An unwritable cache only costs a re-probe next time.
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
