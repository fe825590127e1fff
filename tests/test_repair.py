"""Repair: offline rules on real failures the pipeline and the tools produce, fixes as diffs.

One digits project is trained once (2 epochs) with a RAM budget its measured arena exceeds, so
`tinyforge build` really exits 3; copies of it then fail in the other real ways: a GELU
activation TFLM lacks (verify stage), a float32 model over the flash budget, a platformio.ini
without the TFLM library (the compiler's own error), a linker's region overflow. Claude's
repairer is driven through the real SDK with only the API's network replayed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import httpx2
import pytest

from tests.anthropic_replay import KEY, Replay, tool_reply
from tests.conftest import run_cli, set_epochs
from tests.firmware_fixtures import LocalPio
from tinyforge import pipeline
from tinyforge.check import runtime_costs
from tinyforge.check.proposal import spec_hints
from tinyforge.errors import StageError
from tinyforge.memory.keras_layers import estimate
from tinyforge.memory.keras_source import find_models
from tinyforge.project import read_platformio_ini
from tinyforge.repair import apply_fix, diagnose, propose_fixes
from tinyforge.repair.claude import ClaudeRepairer
from tinyforge.repair.failure import RECORD, failure_from_log
from tinyforge.repair.fixes import FileEdit
from tinyforge.spec import ProjectSpec

REQUEST = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"


def _set(project: Path, key: str, value: str) -> None:
    spec = project / "tinyforge.toml"
    text, count = re.subn(rf"^{key} = .*$", f"{key} = {value}", spec.read_text(), flags=re.M)
    assert count == 1, key
    spec.write_text(text)


@pytest.fixture(scope="module")
def over_ram(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A trained project whose RAM budget leaves ~88% of the arena it needs: exit 3."""
    project = tmp_path_factory.mktemp("repair") / "digits"
    assert run_cli("new", REQUEST, "--out", str(project)).returncode == 0
    set_epochs(project, 2)
    spec = ProjectSpec.load(project)
    costs = runtime_costs("nrf52")
    model = find_models((project / "train.py").read_text(), spec_hints(spec))[0]
    arena = estimate(model).arena_bytes_target
    _set(project, "ram_bytes", str(costs.tflm_ram + costs.app_ram + int(arena * 0.88)))
    build = run_cli("build", str(project))
    return project, build


@pytest.fixture
def trained(over_ram: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> Path:
    """A copy of the trained project with the board's own RAM budget again: it fits now, and
    its report.json, src/main.cpp and lib/model are those of the over-budget build."""
    copy = tmp_path / "digits"
    shutil.copytree(over_ram[0], copy)
    _set(copy, "ram_bytes", "262144")
    return copy


def test_over_budget_build_exits_3_and_the_shrink_fix_makes_it_fit(
    over_ram: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    source, build = over_ram
    assert build.returncode == 3, build.stdout + build.stderr
    assert "Does not fit: RAM" in build.stdout
    assert f"tinyforge repair {source}" in " ".join(build.stderr.split())
    project = tmp_path / "p"
    shutil.copytree(source, project)
    before = (project / "train.py").read_text()

    shown = run_cli("repair", str(project))
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "failure (check, report.json): RAM" in shown.stdout
    assert "Shrink the model to fit" in shown.stdout
    assert re.search(r"^-\s+layers\.Conv2D\(16, 3", shown.stdout, re.M)
    assert re.search(r"^\+\s+layers\.Conv2D\(\d, 3", shown.stdout, re.M)
    assert "--yes" in shown.stdout
    assert (project / "train.py").read_text() == before  # shown, not applied

    applied = run_cli("repair", str(project), "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (project / "train.py").read_text() != before
    result = pipeline.build(project)  # retrain the shrunk model and measure it for real
    assert result.fits, result.report.violations


def test_gelu_fails_at_verify_and_the_activation_is_replaced(trained: Path) -> None:
    good = (trained / "train.py").read_text()
    broken = good.replace('activation="relu"', 'activation="gelu"', 1)
    (trained / "train.py").write_text(broken)
    with pytest.raises(StageError) as failed:
        pipeline.build(trained)
    assert failed.value.stage == "measure"
    assert "uses op GELU" in str(failed.value)
    assert "Didn't find op for builtin opcode 'GELU'" in failed.value.log_tail
    assert (trained / RECORD).is_file()  # kept although the build restored the project

    (failure,) = diagnose(trained)
    assert failure.stage == "measure" and failure.source == "last build"
    repair = propose_fixes(trained)
    (fix,) = repair.fixes
    assert fix.rule == "unsupported-op" and "GELU" in fix.title
    diff = fix.diff()
    assert (
        '-            layers.Conv2D(16, 3, strides=1, padding="same", activation="gelu"),' in diff
    )
    assert (
        '+            layers.Conv2D(16, 3, strides=1, padding="same", activation="relu"),' in diff
    )
    assert (trained / "train.py").read_text() == broken
    apply_fix(trained, fix)
    assert (trained / "train.py").read_text() == good
    assert not (trained / RECORD).exists()


def test_float_model_over_flash_is_quantized_to_int8(trained: Path) -> None:
    int8 = json.loads((trained / "report.json").read_text())
    flash_int8, model_int8 = int8["flash_bytes_estimate"], int8["model_bytes"]
    _set(trained, "quantization", '"float32"')
    _set(trained, "flash_bytes", str(flash_int8 + model_int8))  # int8 fits, 4x weights do not
    floated = pipeline.build(trained, train=False)
    assert not floated.fits and floated.report.violations[0].resource == "flash"

    repair = propose_fixes(trained)
    assert [f.rule for f in repair.fixes] == ["quantize-int8"]
    assert '-quantization = "float32"\n+quantization = "int8"\n' in repair.fixes[0].diff()
    apply_fix(trained, repair.fixes[0])
    spec = ProjectSpec.load(trained)
    assert spec.quantization.value == "int8"
    # The same trained model converted to int8 is what the over-budget build measured.
    assert int8["flash_bytes_estimate"] <= spec.budget.flash_bytes


def test_missing_tflm_library_from_the_compilers_own_error(trained: Path) -> None:
    ini = trained / "platformio.ini"
    bare = re.sub(r"lib_deps =\n(?:[ \t]+.*\n)+", "", ini.read_text())
    ini.write_text(bare)
    assert any(f.stage == "static" for f in diagnose(trained))
    # The Arduino core comes from PlatformIO's framework package; an empty stand-in for its
    # header lets the real compiler reach the TFLM include, as in a real build.
    stub = trained.parent / "arduino-core"
    stub.mkdir()
    (stub / "Arduino.h").write_text("")
    compiled = subprocess.run(
        ["g++", "-std=c++17", "-fsyntax-only", f"-I{stub}", "-Ilib/model", "src/main.cpp"],
        cwd=trained,
        capture_output=True,
        text=True,
        check=False,
    )
    assert compiled.returncode != 0
    log = trained.parent / "pio-run.log"
    log.write_text(compiled.stdout + compiled.stderr)
    assert "TensorFlowLite.h: No such file or directory" in log.read_text()

    shown = run_cli("repair", str(trained), "--log", str(log), "--json")
    data = json.loads(shown.stdout)
    assert data["failures"][0]["message"].endswith("TensorFlowLite.h: No such file or directory")
    (fix,) = data["fixes"]
    assert fix["rule"] == "add-tflm-library" and fix["files"] == ["platformio.ini"]
    assert "+lib_deps =\n+    spaziochirale/Chirale_TensorFLowLite" in fix["diff"]
    applied = run_cli("repair", str(trained), "--log", str(log), "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    env = read_platformio_ini(ini).env()
    assert env is not None and "Chirale_TensorFLowLite" in env.options["lib_deps"]
    assert not any(f.stage == "static" for f in diagnose(trained))


def test_linker_ram_overflow_shrinks_by_the_overflow(trained: Path, tmp_path: Path) -> None:
    # A real GNU ld "region `RAM' overflowed" message: 4 KB of .bss into a 3.5 KB region.
    (tmp_path / "big.c").write_text("char arena[4096];\nint main(void) { return arena[0]; }\n")
    (tmp_path / "mcu.ld").write_text(
        textwrap.dedent(
            """\
            MEMORY { RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 3584 }
            SECTIONS { .text : { *(.text*) } > RAM  .bss : { *(.bss*) *(COMMON) } > RAM }
            """
        )
    )
    linked = subprocess.run(
        ["gcc", "-nostdlib", "-fno-asynchronous-unwind-tables", "-T", "mcu.ld", "big.c"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "overflowed by" in linked.stderr, linked.stderr
    failure = failure_from_log(linked.stderr)
    repair = propose_fixes(trained, failures=[failure])
    (fix,) = repair.fixes
    assert "will not fit in region `RAM'" in failure.message  # ld's first error line
    assert fix.rule == "shrink-model"
    over = re.search(r"overflowed by (\d+) bytes", failure.text())
    assert over is not None
    assert f"the linker's RAM region overflowed by {over.group(1)} bytes" in fix.explanation


def test_firmware_ram_overflow_from_a_real_pio_run_shrinks_the_model(
    trained: Path, local_pio: LocalPio, tmp_path: Path
) -> None:
    # `tinyforge deploy` on the tests' offline PlatformIO platform (real pio, real arm-none-eabi
    # linker) for a board 600 bytes short of the firmware's arena.
    report = json.loads((trained / "report.json").read_text())
    ram = report["arena_bytes_firmware"] - 600
    firmware = local_pio.project(tmp_path / "fw", trained, ram=ram)
    for name in ("tinyforge.toml", "train.py"):
        shutil.copy2(trained / name, firmware / name)
    deployed = run_cli("deploy", str(firmware), "--json")
    assert deployed.returncode == 3, deployed.stdout + deployed.stderr

    (failure, *_static) = diagnose(firmware)
    assert failure.stage == "deploy" and "RAM overflows by" in failure.message
    over = re.search(r"region `RAM' overflowed by (\d+) bytes", failure.log_tail)
    assert over is not None and int(over.group(1)) >= 600
    shrink = [f for f in propose_fixes(firmware).fixes if f.rule == "shrink-model"]
    assert len(shrink) == 1 and shrink[0].applicable
    assert f"overflowed by {over.group(1)} bytes" in shrink[0].explanation


def test_runtime_alone_over_budget_is_advice_not_an_edit(trained: Path) -> None:
    _set(trained, "ram_bytes", "30000")  # below the Mbed core's own RAM on this board
    (fix,) = propose_fixes(trained).fixes  # the over-budget build's report, a tighter spec
    assert not fix.applicable and "no model can fit" in fix.explanation


def test_claude_repairs_what_no_rule_knows_and_its_edit_is_checked(trained: Path) -> None:
    # A real train.py failure no rule covers: a typo in the script.
    good = (trained / "train.py").read_text()
    (trained / "train.py").write_text(
        good.replace("x, y, classes = load_data()", "x, y, classes = load_dta()")
    )
    with pytest.raises(StageError) as failed:
        pipeline.build(trained)
    assert "NameError" in str(failed.value) or "load_dta" in str(failed.value)
    assert propose_fixes(trained).fixes == []  # offline: nothing matches

    sneaky = good.replace("import json\n", "import json\nimport subprocess\n", 1)
    replay = Replay(
        tool_reply(
            "propose_fix",
            {"explanation": "Typo. Fixed.", "files": [{"path": "train.py", "content": sneaky}]},
            1,
        ),
        tool_reply(
            "propose_fix",
            {
                "explanation": "load_dta is a typo for load_data. Call load_data.",
                "files": [{"path": "train.py", "content": good}],
            },
            2,
        ),
    )
    repairer = ClaudeRepairer(
        api_key=KEY, http_client=httpx2.Client(transport=httpx2.MockTransport(replay))
    )
    repair = propose_fixes(trained, repairer=repairer)
    (fix,) = repair.fixes
    assert fix.rule == "claude" and fix.title.startswith("Claude: load_dta is a typo")
    assert "-    x, y, classes = load_dta()" in fix.diff()
    assert len(replay.requests) == 2
    prompt = replay.bodies[0]["messages"][0]["content"]
    assert "load_dta" in prompt and "Failed stage: train" in prompt and "CONV_2D" in prompt
    feedback = replay.bodies[1]["messages"][-1]["content"][0]["content"]
    assert "import of 'subprocess' is not allowed" in feedback


def test_line_edits_reproduce_the_new_text() -> None:
    before = "a\nb\nc\nd"
    after = "a\nB\nc\nd\ne\n"
    edit = FileEdit("x", before, after)
    lines = before.splitlines(keepends=True)
    text = before
    for (sl, sc), (el, ec), new in reversed(edit.line_edits()):
        offsets = [0]
        for ln in lines:
            offsets.append(offsets[-1] + len(ln))
        start, end = offsets[sl] + sc, offsets[el] + ec
        text = text[:start] + new + text[end:]
    assert text == after
