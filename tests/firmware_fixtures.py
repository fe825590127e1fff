"""Test set-up for PlatformIO builds that really run here, offline (a pytest plugin).

PlatformIO cannot install real platforms without the network, so the tests make a local one
(it is test scaffolding, never shipped as a board): a platform folder whose SCons builder drives
Debian's arm-none-eabi toolchain to link a bare-metal Cortex-M image, referenced as
`symlink://`, and PlatformIO's `tool-scons` package made from the `scons` Python package of this
environment (a dev dependency). `pio run` then builds in about a second and prints its real
"RAM: … Flash: …" lines, and a board JSON with little RAM gets the real linker's
"region `RAM' overflowed by N bytes".

The image holds the `model` section of a generated src/main.cpp (the tensor arena of the size
TinyForge computed, the labels) and the generated lib/model (the model's C array, the test
sample), so PlatformIO's figures check TinyForge's.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import run_cli, set_epochs
from tinyforge.generate import sections

# The tool-scons version PlatformIO 6.2.0 asks for (platformio/dependencies.py: "~4.41101.0"),
# i.e. SCons 4.11.1, the `scons` pinned in pyproject.toml's dev dependencies.
TOOL_SCONS_VERSION = "4.41101.0"
PLATFORM_NAME = "tinyforgetestcm"
BOARD_ID = "tinyforge_cm4"
DIGITS_REQUEST = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"

PLATFORM_JSON = {
    "name": PLATFORM_NAME,
    "title": "TinyForge test bare-metal Cortex-M (arm-none-eabi from the system)",
    "description": "Links bare-metal images with the system's arm-none-eabi toolchain; tests only",
    "version": "0.1.0",
    "packages": {},
    "frameworks": {},
}

PLATFORM_PY = f"""\
from platformio.public import PlatformBase


class {PLATFORM_NAME.capitalize()}Platform(PlatformBase):
    pass
"""

# An SCons script as PlatformIO platforms write them: toolchain, flags, a linker script made from
# the board JSON's memory sizes, the size regexes PlatformIO's size check reads.
BUILDER_MAIN = r'''
import os

from SCons.Script import Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()
flash = int(board.get("upload.maximum_size"))
ram = int(board.get("upload.maximum_ram_size"))
build_dir = env.subst("$BUILD_DIR")
os.makedirs(build_dir, exist_ok=True)
script = os.path.join(build_dir, "tinyforge_test.ld")
with open(script, "w") as f:
    f.write(f"""
MEMORY {{
  FLASH (rx) : ORIGIN = 0x08000000, LENGTH = {flash}
  RAM (rwx) : ORIGIN = 0x20000000, LENGTH = {ram}
}}
ENTRY(Reset_Handler)
SECTIONS {{
  .isr_vector : {{ KEEP(*(.isr_vector)) }} > FLASH
  .text : {{
    *(.text*) *(.rodata*) KEEP(*(.init_array*)) KEEP(*(.fini_array*)) . = ALIGN(4);
  }} > FLASH
  .ARM.exidx : {{ *(.ARM.exidx*) }} > FLASH
  .data : {{ *(.data*) . = ALIGN(4); }} > RAM AT > FLASH
  .bss (NOLOAD) : {{ *(.bss*) *(COMMON) . = ALIGN(4); }} > RAM
  end = .;
  _end = .;
}}
""")
machine = ["-mcpu=%s" % board.get("build.cpu", "cortex-m4"), "-mthumb"]
env.Replace(
    AR="arm-none-eabi-ar",
    AS="arm-none-eabi-as",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    LINK="arm-none-eabi-g++",
    RANLIB="arm-none-eabi-ranlib",
    OBJCOPY="arm-none-eabi-objcopy",
    SIZETOOL="arm-none-eabi-size",
    ARFLAGS=["rc"],
    PROGSUFFIX=".elf",
    SIZEPROGREGEXP=r"^(?:\.isr_vector|\.text|\.data|\.ARM\.exidx)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.data|\.bss)\s+(\d+).*",
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
)
env.Append(
    ASFLAGS=machine,
    CCFLAGS=machine + ["-Os", "-ffunction-sections", "-fdata-sections", "-Wall"],
    CXXFLAGS=["-std=gnu++17", "-fno-rtti", "-fno-exceptions"],
    LINKFLAGS=machine
    + ["--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections", "-T", script],
)
Default(env.BuildProgram())
'''

# Never runs on hardware: it exists to be linked and measured. It touches the arena, the model
# and the sample so that --gc-sections keeps every byte TinyForge allotted.
BARE_METAL_MAIN = """\
// TinyForge test image: the `model` section of the generated src/main.cpp, linked bare-metal for
// a Cortex-M4 without Arduino or TFLM.
{model_section}
extern "C" void Reset_Handler() {{
  uint8_t* arena = allocate_arena();
  for (size_t i = 0; i < kTensorArenaSize; i += 256) {{
    arena[i] = static_cast<uint8_t>(i);
  }}
  volatile uint32_t sink = kNumLabels + static_cast<uint32_t>(kLabels[0][0]);
  for (unsigned i = 0; i < g_model_data_len; ++i) {{
    sink = sink + g_model_data[i];
  }}
  sink = sink + static_cast<uint32_t>(g_sample_input[0]);
  for (;;) {{
  }}
}}

__attribute__((section(".isr_vector"), used)) void (*const kVectors[])() = {{Reset_Handler}};

int main() {{ return 0; }}
"""


def board_json(ram: int, flash: int) -> dict[str, object]:
    return {
        "name": f"TinyForge test Cortex-M4 ({ram} B RAM)",
        "vendor": "TinyForge tests",
        "url": "https://example.invalid/tinyforge-test-board",
        "build": {"cpu": "cortex-m4", "mcu": "tinyforgecm4", "f_cpu": "64000000L"},
        "upload": {"maximum_size": flash, "maximum_ram_size": ram},
        "frameworks": [],
    }


@dataclass
class LocalPio:
    core_dir: Path
    platform_dir: Path

    def project(
        self,
        dest: Path,
        generated: Path,
        *,
        ram: int,
        flash: int = 1024 * 1024,
        lib_deps: str | None = None,
    ) -> Path:
        """A PlatformIO project for the local platform from a generated TinyForge project."""
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "boards").mkdir(exist_ok=True)
        (dest / "boards" / f"{BOARD_ID}.json").write_text(json.dumps(board_json(ram, flash)))
        shutil.copytree(generated / "lib", dest / "lib", dirs_exist_ok=True)
        shutil.copy2(generated / "report.json", dest / "report.json")
        model = sections.extract((generated / "src" / "main.cpp").read_text(), "model")
        (dest / "src").mkdir(exist_ok=True)
        (dest / "src" / "main.cpp").write_text(BARE_METAL_MAIN.format(model_section=model))
        ini = [
            "[platformio]",
            f"core_dir = {self.core_dir}",
            f"default_envs = {BOARD_ID}",
            "",
            f"[env:{BOARD_ID}]",
            f"platform = symlink://{self.platform_dir}",
            f"board = {BOARD_ID}",
        ]
        if lib_deps:
            ini += ["lib_deps =", f"    {lib_deps}"]
        (dest / "platformio.ini").write_text("\n".join(ini) + "\n")
        return dest


def make_local_pio(root: Path) -> LocalPio:
    import SCons  # the dev dependency `scons`

    core = root / "core"
    scons_pkg = core / "packages" / "tool-scons"
    scons_pkg.mkdir(parents=True)
    (scons_pkg / "SCons").symlink_to(Path(SCons.__file__).parent, target_is_directory=True)
    # What PlatformIO runs: `python scons.py …` with its own Python.
    (scons_pkg / "scons.py").write_text(
        "import os, sys\n"
        "sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))\n"
        "from SCons.Script import main\n"
        "main()\n"
    )
    (scons_pkg / "package.json").write_text(
        json.dumps({"name": "tool-scons", "version": TOOL_SCONS_VERSION})
    )
    # Owner "platformio" in the spec: with none, PlatformIO asks the registry about it again.
    (scons_pkg / ".piopm").write_text(
        json.dumps(
            {
                "type": "tool",
                "name": "tool-scons",
                "version": TOOL_SCONS_VERSION,
                "spec": {
                    "owner": "platformio",
                    "id": None,
                    "name": "tool-scons",
                    "requirements": None,
                    "uri": None,
                },
            }
        )
    )
    platform = root / "platform"
    (platform / "builder").mkdir(parents=True)
    (platform / "platform.json").write_text(json.dumps(PLATFORM_JSON, indent=2))
    (platform / "platform.py").write_text(PLATFORM_PY)
    (platform / "builder" / "main.py").write_text(BUILDER_MAIN)
    return LocalPio(core, platform)


@pytest.fixture(scope="session")
def arm_toolchain() -> dict[str, str]:
    """Debian's gcc-arm-none-eabi and its newlib C++ library, installed by `make test`."""
    found = {}
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-size"):
        path = shutil.which(tool)
        assert path, f"{tool} is installed by `make test` (scripts/system-deps.sh)"
        found[tool] = path
    return found


@pytest.fixture(scope="session")
def local_pio(tmp_path_factory: pytest.TempPathFactory, arm_toolchain: dict[str, str]) -> LocalPio:
    return make_local_pio(tmp_path_factory.mktemp("local-pio"))


@pytest.fixture(scope="session")
def digits_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built digits project (a short training: the firmware tests need its files, not its
    accuracy). Tests copy from it; none changes it."""
    project = tmp_path_factory.mktemp("firmware") / "digits"
    new = run_cli("new", DIGITS_REQUEST, "--out", str(project))
    assert new.returncode == 0, new.stderr
    set_epochs(project, 2)
    build = run_cli("build", str(project))
    assert build.returncode == 0, build.stdout + build.stderr
    return project
