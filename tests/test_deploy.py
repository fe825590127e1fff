"""PlatformIO for real: generated projects per board family, `pio run` on a local Cortex-M
platform (offline), real linker overflows, compiler errors, and the offline messages."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.firmware_fixtures import BARE_METAL_MAIN, LocalPio
from tinyforge import deploy, generate
from tinyforge.boards import all_boards, get_board
from tinyforge.deploy import parse
from tinyforge.deploy.pio import PioError, registry_reachable
from tinyforge.generate import firmware, sections
from tinyforge.spec import ProjectSpec

PIO = [sys.executable, "-m", "platformio"]


def _report(project: Path) -> dict:
    return json.loads((project / "report.json").read_text())


def _pio_env(core_dir: Path) -> dict[str, str]:
    return {**os.environ, "PLATFORMIO_CORE_DIR": str(core_dir)}


# -- generated projects ----------------------------------------------------------------------


def _one_board_per_family() -> list[str]:
    seen: dict[str, str] = {}
    for board in all_boards():
        seen.setdefault(board.family, board.id)
    seen["rp2040-url"] = "rpipicow"  # a platform given as a git URL
    seen["esp32-psram"] = "esp32cam"
    seen["esp32-no-psram"] = "esp32dev"
    return sorted(set(seen.values()))


@pytest.mark.parametrize("board_id", _one_board_per_family())
def test_generated_ini_is_accepted_by_pio_project_config(board_id: str, tmp_path: Path) -> None:
    board = get_board(board_id)
    spec = ProjectSpec.from_dict(
        {
            "task": "image_classification",
            "board": board_id,
            "input_shape": [8, 8, 1],
            "dataset": {"kind": "digits"},
            "budget": {"ram_bytes": board.ram_bytes // 2, "flash_bytes": board.flash_bytes},
            "num_classes": 10,
        }
    )
    ini = generate.render_platformio_ini(spec, board)
    (tmp_path / "platformio.ini").write_text(ini)
    result = subprocess.run(
        [*PIO, "project", "config", "--json-output"],
        cwd=tmp_path,
        env=_pio_env(tmp_path / "core"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = dict(json.loads(result.stdout))
    env = dict(config[f"env:{board_id}"])
    assert env["platform"] == board.platform
    assert env["board"] == board_id
    assert env["framework"] == ["arduino"]
    assert "-DTF_LITE_STATIC_MEMORY" in env["build_flags"]
    assert int(env["board_upload.maximum_ram_size"]) == board.ram_bytes // 2
    if board.family.startswith("esp32"):
        # Espressif's esp-tflite-micro comes with the Arduino-ESP32 3.x core (pioarduino).
        assert "lib_deps" not in env
        assert "pioarduino/platform-espressif32" in board.platform
        assert ("-DBOARD_HAS_PSRAM" in env["build_flags"]) == (board.psram_bytes > 0)
    else:
        assert env["lib_deps"] == [board.tflm_library]


def test_esp32_arena_goes_to_the_heap_when_static_dram_would_overflow() -> None:
    common = {
        "model_bytes": 1000,
        "quantization": "int8",
        "labels": ["a", "b"],
        "arena_target_bytes": 1,
        "resolver_methods": ["AddFullyConnected"],
    }
    macro = firmware.ARENA_HEAP_MACRO
    small = generate.render_main_cpp(board=get_board("esp32dev"), arena_bytes=20_000, **common)
    big = generate.render_main_cpp(board=get_board("esp32cam"), arena_bytes=150_000, **common)
    nrf = generate.render_main_cpp(board=get_board("nano33ble"), arena_bytes=150_000, **common)
    assert f"#define {macro} 0" in small
    assert f"#define {macro} 1" in big and "MALLOC_CAP_SPIRAM" in big
    assert f"#define {macro} 0" in nrf  # static RAM is all the RAM there: the linker decides
    assert "Chirale_TensorFlowLite.h" in nrf and "#include <Chirale" not in big


# -- the generated sources compile for a Cortex-M ------------------------------------------------


def test_model_data_and_main_model_section_compile_for_cortex_m(
    digits_project: Path, arm_toolchain: dict[str, str], tmp_path: Path
) -> None:
    gxx = arm_toolchain["arm-none-eabi-g++"]
    flags = ["-mcpu=cortex-m4", "-mthumb", "-std=gnu++17", "-Os", "-Wall", "-Wextra", "-Werror"]
    lib = digits_project / "lib" / "model"
    main = (digits_project / "src" / "main.cpp").read_text()
    assert set(sections.find_sections(main)) == {"tflm", "model", "ops"}
    (tmp_path / "model_section.cpp").write_text(sections.extract(main, "model"))
    jobs = [
        [str(lib / "model_data.cc")],
        [str(tmp_path / "model_section.cpp")],
        [str(tmp_path / "model_section.cpp"), f"-D{firmware.ARENA_HEAP_MACRO}=1"],
    ]
    for n, job in enumerate(jobs):
        out = tmp_path / f"part{n}.o"
        cmd = [gxx, *flags, "-I", str(lib), "-c", *job, "-o", str(out)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert out.stat().st_size > 0
    symbols = subprocess.run(
        ["arm-none-eabi-nm", "-S", str(tmp_path / "part1.o")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    arena = re.search(r"^[0-9a-f]+ ([0-9a-f]+) B tensor_arena$", symbols, re.M)
    assert arena and int(arena.group(1), 16) == _report(digits_project)["arena_bytes_firmware"]


# -- parsers on real toolchain output ------------------------------------------------------------


def test_parsers_read_a_real_linker_overflow_and_compiler_error(
    digits_project: Path, arm_toolchain: dict[str, str], tmp_path: Path
) -> None:
    """The generated arena linked with a deliberately huge extra array against a small RAM."""
    gxx = arm_toolchain["arm-none-eabi-g++"]
    lib = digits_project / "lib" / "model"
    model = sections.extract((digits_project / "src" / "main.cpp").read_text(), "model")
    source = BARE_METAL_MAIN.format(model_section=model).replace(
        "int main() {",
        "alignas(16) uint8_t huge_buffer[200000];\nint main() {\n  huge_buffer[7] = 1;",
    )
    (tmp_path / "main.cpp").write_text(source)
    ram = 64 * 1024
    (tmp_path / "small.ld").write_text(
        f"""MEMORY {{ FLASH (rx) : ORIGIN = 0x08000000, LENGTH = 1M
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = {ram} }}
ENTRY(Reset_Handler)
SECTIONS {{
  .text : {{ KEEP(*(.isr_vector)) *(.text*) *(.rodata*) }} > FLASH
  .ARM.exidx : {{ *(.ARM.exidx*) }} > FLASH
  .data : {{ *(.data*) }} > RAM AT > FLASH
  .bss (NOLOAD) : {{ *(.bss*) *(COMMON) }} > RAM
}}
"""
    )
    link = subprocess.run(
        [gxx, "-mcpu=cortex-m4", "-mthumb", "-Os", "-std=gnu++17", "-I", str(lib),
         str(tmp_path / "main.cpp"), str(lib / "model_data.cc"), "--specs=nano.specs",
         "--specs=nosys.specs", "-Wl,--gc-sections", "-T", str(tmp_path / "small.ld"),
         "-o", str(tmp_path / "image.elf")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert link.returncode != 0
    log = parse.parse_pio_output(link.stderr.splitlines())
    overflow = log.overflow("ram")
    assert overflow is not None and overflow.region == "RAM" and ".bss" in overflow.sections
    arena = _report(digits_project)["arena_bytes_firmware"]
    # What TinyForge allotted (arena + the extra array) beyond the region, to the alignment.
    predicted = arena + 200000 - ram
    assert overflow.bytes is not None and 0 <= overflow.bytes - predicted <= 64

    broken = source.replace("sink = sink + g_model_data[i];", "sink = sink + g_model_dat[i];")
    (tmp_path / "broken.cpp").write_text(broken)
    compile_ = subprocess.run(
        [gxx, "-mcpu=cortex-m4", "-mthumb", "-I", str(lib), "-c", str(tmp_path / "broken.cpp"),
         "-o", str(tmp_path / "broken.o")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    errors = parse.parse_pio_output(compile_.stderr.splitlines()).errors
    line = 1 + broken.splitlines().index("    sink = sink + g_model_dat[i];")
    assert errors and errors[0].file.endswith("broken.cpp") and errors[0].line == line
    assert "g_model_dat" in errors[0].message and errors[0].column is not None


def test_pkg_and_device_list_parsers_on_real_pio_output(local_pio: LocalPio) -> None:
    listed = subprocess.run(
        [*PIO, "pkg", "list", "-g"],
        env=_pio_env(local_pio.core_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    tools = [p for p in parse.parse_pkg_list(listed.splitlines()) if p.kind == "tool"]
    assert [(t.name, t.required) for t in tools] == [("tool-scons", "platformio/tool-scons")]
    devices = subprocess.run(
        [*PIO, "device", "list", "--serial", "--json-output"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert [p.port for p in parse.parse_device_list(devices)] == [
        d["port"] for d in json.loads(devices)
    ]


# -- `pio run` on the local platform -------------------------------------------------------------


def test_pio_run_sizes_check_tinyforges_figures(
    digits_project: Path, local_pio: LocalPio, tmp_path: Path
) -> None:
    project = local_pio.project(tmp_path / "fits", digits_project, ram=256 * 1024)
    result = run_cli("deploy", str(project), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    report = _report(digits_project)
    sample_bytes = (digits_project / "artifacts" / "sample_input.npy").stat().st_size  # upper bound
    assert data["ok"] and data["problems"] == []
    # RAM: the arena TinyForge computed is (to its alignment) the whole of the image's RAM.
    assert 0 <= data["ram"]["used"] - report["arena_bytes_firmware"] <= 64
    assert data["ram"]["total"] == 256 * 1024
    # Flash: the model's C array, the sample, the labels and a few hundred bytes of code.
    flash = data["flash"]["used"]
    assert report["model_bytes"] <= flash <= report["model_bytes"] + sample_bytes + 2048
    assert data["estimate"]["ram_bytes_estimate"] == report["ram_bytes_estimate"]
    text = run_cli("deploy", str(project))
    assert text.returncode == 0 and "TinyForge estimated" in text.stdout


def test_small_ram_board_gives_the_real_overflow_on_the_board_line(
    digits_project: Path, local_pio: LocalPio, tmp_path: Path
) -> None:
    report = _report(digits_project)
    ram = report["arena_bytes_firmware"] - 1000
    project = local_pio.project(tmp_path / "small", digits_project, ram=ram)
    result = run_cli("deploy", str(project), "--json")
    assert result.returncode == 3, result.stdout + result.stderr
    data = json.loads(result.stdout)
    [problem] = [p for p in data["problems"] if p["code"] == "ram-overflow"]
    assert problem["severity"] == "error" and problem["anchor"] == "board"
    assert problem["file"] == str(project / "platformio.ini")
    figures = problem["data"]
    # The linker's N against TinyForge's: the arena is 1000 bytes over, plus alignment.
    assert 1000 <= figures["overflow_bytes"] <= 1000 + 64
    assert figures["arena_bytes"] == report["arena_bytes_firmware"]
    assert figures["model_bytes"] == report["model_bytes"]
    assert f"{figures['overflow_bytes']:,} bytes" in problem["message"]
    assert f"{report['arena_bytes_firmware']:,} bytes" in problem["message"]
    assert f"{report['model_bytes']:,} bytes" in problem["message"]
    assert figures["bigger_boards"], "boards with more RAM are proposed"
    plain = run_cli("deploy", str(project))
    assert plain.returncode == 3 and "RAM overflows by" in plain.stdout


def test_compile_error_is_reported_on_its_line(
    digits_project: Path, local_pio: LocalPio, tmp_path: Path
) -> None:
    project = local_pio.project(tmp_path / "broken", digits_project, ram=256 * 1024)
    main = project / "src" / "main.cpp"
    lines = main.read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if "sink = sink + g_model_data[i];" in ln)
    lines[at] = lines[at].replace("g_model_data", "g_model_dta")
    main.write_text("\n".join(lines) + "\n")
    result = deploy.build_firmware(project)
    assert not result.ok
    [error] = [p for p in result.problems if p.severity == "error"]
    assert error.code == "compile-error" and Path(error.file) == main.resolve()
    assert error.line == at + 1 and "g_model_dta" in error.message
    assert "main.cpp" in result.summary


# -- what cannot work here ----------------------------------------------------------------------


def test_pio_run_offline_says_what_is_missing_at_once(digits_project: Path, tmp_path: Path) -> None:
    """A real generated project (nordicnrf52) with an empty PlatformIO: no minute-long wait."""
    assert not registry_reachable(), "these tests expect a machine without network"
    project = tmp_path / "digits"
    shutil.copytree(digits_project, project)
    env = {"PLATFORMIO_CORE_DIR": str(tmp_path / "empty-core")}
    start = time.monotonic()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "tinyforge"), "deploy", str(project)],
        env={**os.environ, **env, "COLUMNS": "300", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "nordicnrf52" in message and "`pio pkg install -g -p nordicnrf52`" in message
    assert "Traceback" not in result.stdout + result.stderr
    assert elapsed < 20, f"took {elapsed:.1f} s"
    print(f"offline message after {elapsed:.2f} s")


def test_missing_library_download_is_stopped_at_once(
    digits_project: Path, local_pio: LocalPio, tmp_path: Path
) -> None:
    """PlatformIO starts installing lib_deps; offline that waits a minute: we stop it."""
    project = local_pio.project(
        tmp_path / "libdeps",
        digits_project,
        ram=256 * 1024,
        lib_deps="spaziochirale/Chirale_TensorFLowLite@^2.0.0",
    )
    start = time.monotonic()
    with pytest.raises(PioError) as caught:
        deploy.build_firmware(project)
    elapsed = time.monotonic() - start
    assert caught.value.kind == "offline"
    message = str(caught.value)
    assert "Chirale_TensorFLowLite" in message and "pio pkg install -d" in message
    assert elapsed < 20, f"took {elapsed:.1f} s"


def test_upload_without_a_board_lists_the_ports(
    digits_project: Path, local_pio: LocalPio, tmp_path: Path
) -> None:
    project = local_pio.project(tmp_path / "upload", digits_project, ram=256 * 1024)
    seen = json.loads(
        subprocess.run(
            [*PIO, "device", "list", "--serial", "--json-output"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    result = run_cli("deploy", str(project), "--upload", "--port", "/dev/ttyTINYFORGE9")
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "No board on /dev/ttyTINYFORGE9" in message and "Traceback" not in message
    for port in seen:
        assert port["port"] in message
    if not any("VID:PID" in p["hwid"].upper() for p in seen):
        auto = run_cli("deploy", str(project), "--upload")
        assert auto.returncode == 2 and "No board is connected" in auto.stderr


# -- the user's own edits in src/main.cpp --------------------------------------------------------


def test_rebuild_refreshes_only_the_marked_sections_of_an_edited_main(
    digits_project: Path, tmp_path: Path
) -> None:
    from tinyforge.generate.files import NEW_SUFFIX, write_generated

    project = tmp_path / "digits"
    shutil.copytree(digits_project, project)
    main = project / "src" / "main.cpp"
    original = main.read_text()
    edited = original.replace(
        "void setup() {\n", "void setup() {\n  pinMode(LED_BUILTIN, OUTPUT);  // mine\n"
    ).replace("  delay(1000);\n}", "  delay(250);  // mine too\n}")
    assert edited.count("mine") == 2
    main.write_text(edited)
    regenerated = generate.render_main_cpp(
        board=get_board("nano33ble"),
        model_bytes=4321,
        quantization="int8",
        labels=[str(d) for d in range(10)],
        arena_bytes=9000,
        arena_target_bytes=8000,
        resolver_methods=["AddFullyConnected", "AddSoftmax"],
    )
    result = write_generated(project, {"src/main.cpp": regenerated})
    assert result.merged == ["src/main.cpp"] and not result.kept
    merged = main.read_text()
    assert "pinMode(LED_BUILTIN, OUTPUT);  // mine" in merged
    assert "delay(250);  // mine too" in merged
    assert "constexpr size_t kMeasuredArenaBytes = 9000;" in merged
    assert "constexpr int kNumOps = 2;" in merged and "AddConv2D" not in merged
    assert sections.extract(merged, "model") == sections.extract(regenerated, "model")
    assert not (project / ("src/main.cpp" + NEW_SUFFIX)).exists()
    assert any("refreshed only its TinyForge sections" in n for n in result.describe_kept())
    # Markers removed: TinyForge cannot tell its lines from the user's, so it keeps the file.
    unmarked = "\n".join(ln for ln in merged.splitlines() if "tinyforge:end ops" not in ln)
    main.write_text(unmarked)
    again = write_generated(project, {"src/main.cpp": regenerated})
    assert again.kept == ["src/main.cpp"] and main.read_text() == unmarked
    assert (project / ("src/main.cpp" + NEW_SUFFIX)).read_text() == regenerated
