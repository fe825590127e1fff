"""`tinyforge verify` and the device stage of `build`: the project's own firmware compiled with
real TFLM (the shared kit, and the 2023 Arduino library) by arm-none-eabi-g++ for the board's
core, run in qemu-system-arm, its figures measured there. Nothing here is mocked: the compiler,
TFLM, QEMU and the host TFLM interpreter all run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import FRUIT_CSV, TFLM_ARDUINO, TFLM_KIT, run_cli, set_epochs
from tests.test_build_anomaly import make_readings
from tests.test_build_audio import make_clips
from tinyforge import jobs
from tinyforge.device.mapfile import parse_map
from tinyforge.device.run import parse_run
from tinyforge.generate.render_cpp import cpp_comment, cpp_string
from tinyforge.report import DeviceNotMeasured

pytestmark = pytest.mark.slow

KIT_ENV = {"TINYFORGE_TFLM_DIR": str(TFLM_KIT)}


def build(project: Path, env: dict[str, str] | None = None) -> dict:
    result = run_cli("build", str(project), env=env or KIT_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((project / "report.json").read_text("utf-8"))


def verify(project: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    result = run_cli("verify", str(project), "--json", *args, env=env or KIT_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def new(request: str, project: Path) -> None:
    result = run_cli("new", request, "--out", str(project))
    assert result.returncode == 0, result.stdout + result.stderr
    set_epochs(project, 4)


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Digits on a Nano 33 BLE Sense (nRF52840, Cortex-M4F), built with the device stage."""
    project = tmp_path_factory.mktemp("device") / "digits"
    new("Recognize handwritten digits on an Arduino Nano 33 BLE Sense", project)
    return project, build(project)


def assert_measured(device: dict, report: dict, core: str, machine: str) -> None:
    assert device["measured"] is True
    assert device["core"] == core and device["machine"] == machine
    assert device["samples"] >= 32
    # The sketch ran its own sample, then every test sample, each through Invoke().
    assert device["sketch_output"].startswith("label: ")
    assert 0 < device["arena_used_bytes"] <= device["arena_smallest_bytes"]
    assert device["arena_smallest_bytes"] <= device["arena_firmware_bytes"]
    assert device["arena_note"]
    # The model array is in flash byte for byte; each operator has its kernel's code.
    assert device["flash"]["model"] == report["model_bytes"]
    assert set(device["kernel_flash"]) == set(report["ops"])
    assert all(size > 0 for size in device["kernel_flash"].values())
    assert device["flash"]["TFLM runtime"] > 10_000
    assert device["ram"]["tensor arena"] == device["arena_firmware_bytes"]
    assert device["instructions_min"] > 1000
    expected_ms = (
        device["instructions_per_inference"] * device["cycles_per_instruction"] / device["clock_hz"]
    ) * 1000
    assert device["latency_ms_estimate"] == pytest.approx(expected_ms, abs=1e-4)
    assert "estimate" in device["latency_note"]


def test_build_measures_digits_on_an_emulated_m4f_with_cmsis_nn(digits: tuple[Path, dict]) -> None:
    project, report = digits
    device = report["device"]
    assert_measured(device, report, "cortex-m4f", "mps2-an386")
    assert device["kernels"] == "cmsis_nn"
    assert device["tflm"]["kind"] == "kit" and device["tflm"]["commit"].startswith("90b983c")
    assert device["argmax_agreement_percent"] >= 95
    assert device["outputs_max_abs_diff"] >= 0
    # The verdict now stands on measured parts: the arena is what the firmware allocates.
    assert report["figures"] == "measured"
    assert report["ram_parts"]["tensor arena"] == device["arena_firmware_bytes"]
    assert report["flash_parts"]["model"] == report["model_bytes"]
    assert "Arduino core (estimate)" in report["flash_parts"]
    # The firmware that ran is the project's: its build folder holds the ELF and the map.
    assert (project / ".tinyforge/device/cortex-m4f-cmsis_nn/firmware.elf").is_file()
    shown = run_cli("verify", str(project), env=KIT_ENV)
    assert shown.returncode == 0, shown.stderr
    assert "emulated Cortex-M4F" in shown.stdout and "Fits nano33ble (measured)" in shown.stdout


def test_second_verify_only_links(digits: tuple[Path, dict]) -> None:
    project, _ = digits
    device = verify(project)
    assert device["compiled_objects"] == 0 and device["tflm_objects"] > 40


def test_reference_kernels_are_bit_identical_to_the_host(digits: tuple[Path, dict]) -> None:
    project, report = digits
    reference = verify(project, "--kernels", "reference")
    assert_measured(reference, report, "cortex-m4f", "mps2-an386")
    assert reference["outputs_identical_percent"] == 100.0
    assert reference["outputs_max_abs_diff"] == 0.0
    # CMSIS-NN is the board's library because it is faster on the same core.
    cmsis = report["device"]["instructions_per_inference"]
    assert reference["instructions_per_inference"] > 3 * cmsis
    assert "CMSIS-NN" not in json.dumps(reference["arena_note"])


def test_generated_firmware_compiles_against_the_2023_arduino_library(
    digits: tuple[Path, dict],
) -> None:
    project, report = digits
    device = verify(project, "--tflm", str(TFLM_ARDUINO))
    assert_measured(device, report, "cortex-m4f", "mps2-an386")
    assert device["tflm"]["kind"] == "arduino"
    assert "Arduino_TensorFlowLite" in device["tflm"]["name"]
    assert device["argmax_agreement_percent"] >= 90


def test_cortex_m7_fruit_csv(tmp_path: Path) -> None:
    """The seed paper's colour-sensor data on a Teensy 4.1 (i.MX RT1062, Cortex-M7)."""
    data = tmp_path / "fruit_data.csv"
    shutil.copy(FRUIT_CSV, data)
    project = tmp_path / "fruit"
    new(
        f"Tell fruit apart from the colour sensor's RGB readings in {data} (label column Fruit) "
        "on a Teensy 4.1",
        project,
    )
    report = build(project)
    device = report["device"]
    assert_measured(device, report, "cortex-m7", "mps2-an500")
    assert device["emulated_core"] == "Cortex-M7"
    assert device["argmax_agreement_percent"] >= 95
    assert device["clock_hz"] == 600_000_000


def test_cortex_m0plus_anomaly_scores(tmp_path: Path) -> None:
    """An anomaly autoencoder on a Pi Pico (RP2040): built for Cortex-M0+, run on an ARMv7-M."""
    data = make_readings(tmp_path / "motor.csv")
    project = tmp_path / "motor"
    new(
        f"Detect anomalies in motor readings from {data} (label column state) on a Pi Pico", project
    )
    report = build(project)
    device = report["device"]
    assert_measured(device, report, "cortex-m0plus", "mps2-an386")
    assert "Cortex-M0+" in device["core_note"] and "Cortex-M4F" in device["core_note"]
    assert device["sketch_output"].startswith(("label: normal", "label: anomaly"))
    assert device["argmax_agreement_percent"] == 100.0  # one score per sample
    assert device["outputs_max_abs_diff"] <= 1


def test_keyword_spotting_against_the_arduino_library(tmp_path: Path) -> None:
    clips = make_clips(tmp_path / "clips")
    project = tmp_path / "kws"
    new(
        f"Spot the keywords up and down in audio clips from {clips} on a Nano 33 BLE Sense", project
    )
    report = build(project, env={"TINYFORGE_TFLM_DIR": str(TFLM_ARDUINO)})
    device = report["device"]
    assert device["tflm"]["kind"] == "arduino"
    assert_measured(device, report, "cortex-m4f", "mps2-an386")


LABELS = ["🍎", "naïve", 'a "quoted" one', "back\\slash"]


def test_labels_with_quotes_and_non_ascii_compile_and_print(tmp_path: Path) -> None:
    rows = ["r,g,b,kind"]
    centres = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
    for i in range(240):
        label = i % 4
        r, g, b = (c + (i * 7 + 13 * k) % 21 - 10 for k, c in enumerate(centres[label]))
        cell = LABELS[label].replace('"', '""')
        rows.append(f'{r},{g},{b},"{cell}"')
    data = tmp_path / "colours.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    project = tmp_path / "colours"
    new(f"Classify colours from {data} (label column kind) on a Nano 33 BLE Sense", project)
    set_epochs(project, 30)
    report = build(project)
    main_cpp = (project / "src/main.cpp").read_text("utf-8")
    for label in LABELS:
        assert cpp_string(label) in main_cpp
    device = report["device"]
    printed = [ln.split("  ")[0].removeprefix("label: ") for ln in device["serial"][1:]]
    assert printed and set(printed) <= set(LABELS)
    assert len(set(printed)) >= 2
    # The host compiler takes the same file (syntax and semantics), with TinyForge's stand-in.
    shim = Path(__file__).resolve().parents[1] / "server/tinyforge/device/shim"
    compat = project / ".tinyforge/device/cortex-m4f-cmsis_nn/compat"
    host = subprocess.run(
        [
            "g++",
            "-std=gnu++17",
            "-fsyntax-only",
            "-DTF_LITE_STATIC_MEMORY",
            f"-I{compat}",
            f"-I{shim}",
            f"-I{project / 'lib/model'}",
            f"-I{TFLM_KIT}",
            f"-I{TFLM_KIT / 'third_party/flatbuffers/include'}",
            f"-I{TFLM_KIT / 'third_party/gemmlowp'}",
            f"-I{TFLM_KIT / 'third_party/ruy'}",
            str(project / "src/main.cpp"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert host.returncode == 0, host.stderr


def test_a_label_cannot_inject_code_into_main_cpp(tmp_path: Path) -> None:
    label = "x\nint injected_global = 42; // \\"
    assert "\n" not in cpp_string(label) and "\n" not in cpp_comment(label)
    source = tmp_path / "labels.cpp"
    source.write_text(
        f"// classes: {cpp_comment(label)}\n"
        f"const char* const kLabels[] = {{{cpp_string(label)}}};\n"
        "int probe = 1;\n",
        encoding="utf-8",
    )
    obj = tmp_path / "labels.o"
    for prefix in ("", "arm-none-eabi-"):
        done = subprocess.run(
            [f"{prefix}g++", "-c", str(source), "-o", str(obj)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        symbols = subprocess.run([f"{prefix}nm", str(obj)], capture_output=True, text=True).stdout
        assert "injected_global" not in symbols and "probe" in symbols


def test_a_sketch_that_halts_is_said_in_one_sentence(
    digits: tuple[Path, dict], tmp_path: Path
) -> None:
    """The user's own main.cpp is what runs: an arena they shrank fails on the target."""
    project = tmp_path / "shrunk"
    shutil.copytree(digits[0], project, ignore=shutil.ignore_patterns(".tinyforge"))
    main = project / "src/main.cpp"
    text = main.read_text("utf-8")
    marker = "constexpr size_t kTensorArenaSize = kMeasuredArenaBytes + kArenaMarginBytes;"
    assert marker in text
    main.write_text(text.replace(marker, "constexpr size_t kTensorArenaSize = 1024;"), "utf-8")
    result = run_cli("verify", str(project), env=KIT_ENV)
    assert result.returncode == 2
    assert "did not run to the end" in result.stderr
    assert "AllocateTensors() failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_sketch_that_does_not_compile_names_the_file(
    digits: tuple[Path, dict], tmp_path: Path
) -> None:
    project = tmp_path / "broken"
    shutil.copytree(digits[0], project, ignore=shutil.ignore_patterns(".tinyforge"))
    main = project / "src/main.cpp"
    main.write_text(main.read_text("utf-8") + "\nint broken( {\n", "utf-8")
    result = run_cli("verify", str(project), env=KIT_ENV)
    assert result.returncode == 2
    assert "src/main.cpp does not compile against TFLM" in result.stderr
    assert "Traceback" not in result.stderr
    # In a build, the trained model stays: only the firmware is said to be broken.
    built = run_cli("build", str(project), env=KIT_ENV)
    assert built.returncode == 2
    assert "src/main.cpp does not compile" in built.stderr
    report = json.loads((project / "report.json").read_text("utf-8"))
    assert report["device"]["failed"] is True and report["figures"] == "estimated"
    assert (project / "model.tflite").is_file()


def test_esp32_is_said_and_keeps_the_estimate(digits: tuple[Path, dict], tmp_path: Path) -> None:
    project = tmp_path / "esp32"
    shutil.copytree(digits[0], project, ignore=shutil.ignore_patterns(".tinyforge"))
    spec = project / "tinyforge.toml"
    spec.write_text(spec.read_text("utf-8").replace('"nano33ble"', '"esp32dev"'), "utf-8")
    result = run_cli("verify", str(project), env=KIT_ENV)
    assert result.returncode == 2
    assert "Xtensa" in result.stderr and "estimates" in result.stderr
    rebuilt = run_cli("build", str(project), env=KIT_ENV)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    report = json.loads((project / "report.json").read_text("utf-8"))
    assert report["figures"] == "estimated"
    assert report["device"]["measured"] is False
    assert "Xtensa" in report["device"]["reason"]
    assert "Not run on an emulated board" in rebuilt.stdout


def test_without_a_tflm_source_the_build_says_so(
    digits: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tinyforge import pipeline

    project = tmp_path / "nosource"
    shutil.copytree(digits[0], project, ignore=shutil.ignore_patterns(".tinyforge"))
    env = {"TINYFORGE_TFLM_DIR": "", "TINYFORGE_CACHE_DIR": str(tmp_path / "empty-cache")}
    result = run_cli("build", str(project), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No TFLite Micro source found" in result.stdout
    # --no-device (here through the pipeline, converting the trained model again).
    monkeypatch.setenv("TINYFORGE_TFLM_DIR", str(TFLM_KIT))
    skipped = pipeline.build(project, train=False, device=False)
    device = skipped.report.device
    assert isinstance(device, DeviceNotMeasured) and device.measured is False
    assert "--no-device" in (device.reason or "")
    assert skipped.report.figures == "estimated"


def test_cancel_kills_the_compilers(digits: tuple[Path, dict], tmp_path: Path) -> None:
    from tinyforge import pipeline

    project = tmp_path / "cancelled"
    shutil.copytree(digits[0], project, ignore=shutil.ignore_patterns(".tinyforge"))
    before = (project / "report.json").read_bytes()
    cancel = threading.Event()
    errors: list[BaseException] = []
    old = os.environ.get("TINYFORGE_CACHE_DIR")
    os.environ["TINYFORGE_CACHE_DIR"] = str(tmp_path / "cold-cache")  # so that it compiles
    try:

        def work() -> None:
            try:
                pipeline.verify_on_device(project, tflm=TFLM_KIT, cancel=cancel)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=work)
        thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _compilers():
            time.sleep(0.1)
        assert _compilers(), "the compilation never started"
        cancel.set()
        thread.join(timeout=60)
    finally:
        if old is None:
            os.environ.pop("TINYFORGE_CACHE_DIR", None)
        else:
            os.environ["TINYFORGE_CACHE_DIR"] = old
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], jobs.Cancelled)
    time.sleep(0.5)
    assert not _compilers()
    assert (project / "report.json").read_bytes() == before
    # No half-written object in the cache: every object there is complete.
    assert not list((tmp_path / "cold-cache").rglob("*.tmp"))


def _compilers() -> list[psutil.Process]:
    """The cross-compilers still running under this test (a zombie being reaped is not)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and "arm-none-eabi" in " ".join(
                proc.cmdline()
            ):
                found.append(proc)
        except psutil.Error:  # it ended while we looked
            continue
    return found


def test_map_and_run_parsers_never_raise(digits: tuple[Path, dict]) -> None:
    project, _ = digits
    map_text = (project / ".tinyforge/device/cortex-m4f-cmsis_nn/firmware.map").read_text()
    sections = parse_map(map_text)
    names = {s.symbol for s in sections}
    assert "g_model_data" in names and "tensor_arena" in names
    for garbage in (
        "",
        "Linker script and memory map\n .text 0xzz",
        map_text[: len(map_text) // 3],
    ):
        parse_map(garbage)
    partial = parse_run("@@tinyforge out 0 9 zz\n@@tinyforge probe size=x ok=1 used=2\nlabel: 7\n")
    assert partial.serial == ["label: 7"] and not partial.finished
    assert len(partial.problems) == 2


def test_source_layouts_and_kernel_selection(tmp_path: Path) -> None:
    """A kit, an Arduino library, and a bare TFLM tree (as TFLM's create_tflm_tree.py exports
    it): each gives its kernel sets, and a model's operators select only their kernels."""
    from tinyforge.device.source import TflmSourceError, load_source

    ops = ["CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    kit = load_source(TFLM_KIT)
    assert kit.kind == "kit" and set(kit.kernels) == {"cmsis_nn", "reference"}
    chosen = kit.kernel_sources("cmsis_nn", ops)
    assert set(chosen) == {*ops, "(shared)"}
    assert any("cmsis_nn/conv" in s.rel for s in chosen["CONV_2D"])
    assert any(s.rel.endswith("conv_common.cc") for s in chosen["CONV_2D"])
    every = kit.third_party_sources("cmsis_nn")
    reached = kit.third_party_sources("cmsis_nn", [s for f in chosen.values() for s in f])
    assert 0 < len(reached) < len(every)
    assert kit.missing_ops("cmsis_nn", [*ops, "NOT_AN_OP"]) == ["NOT_AN_OP"]

    arduino = load_source(TFLM_ARDUINO)
    assert arduino.kind == "arduino" and arduino.kernels == ("cmsis_nn",)

    tree = tmp_path / "tflm-tree"
    tree.mkdir()
    (tree / "tensorflow").symlink_to(TFLM_KIT / "tensorflow")
    (tree / "third_party").symlink_to(TFLM_KIT / "third_party")
    bare = load_source(tree)
    assert bare.kind == "tree" and set(bare.kernels) == {"cmsis_nn", "reference"}
    reference = bare.kernel_sources("reference", ops)
    assert not any("cmsis_nn/" in s.rel for f in reference.values() for s in f)
    with pytest.raises(TflmSourceError, match="not a TFLM source tree"):
        load_source(tmp_path)


def test_tflm_source_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--tflm, then TINYFORGE_TFLM_DIR, then the project's .pio/libdeps, then the user's cache."""
    from tinyforge.device.source import TflmSourceError, find_source

    project = tmp_path / "project"
    libdeps = project / ".pio" / "libdeps" / "nano33ble" / "Arduino_TensorFlowLite"
    libdeps.parent.mkdir(parents=True)
    libdeps.symlink_to(TFLM_ARDUINO)
    cache = tmp_path / "cache"
    monkeypatch.setenv("TINYFORGE_CACHE_DIR", str(cache))
    monkeypatch.setenv("TINYFORGE_TFLM_DIR", str(TFLM_KIT))
    assert find_source(project, TFLM_ARDUINO).kind == "arduino"
    assert find_source(project).kind == "kit"
    monkeypatch.delenv("TINYFORGE_TFLM_DIR")
    assert find_source(project).kind == "arduino"  # PlatformIO's copy of the board's library
    bare = tmp_path / "bare"
    bare.mkdir()
    cache.mkdir()
    (cache / "tflm-source").symlink_to(TFLM_KIT)
    assert find_source(bare).kind == "kit"
    (cache / "tflm-source").unlink()
    with pytest.raises(TflmSourceError, match="No TFLite Micro source found"):
        find_source(bare)
