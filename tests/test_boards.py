"""Board database: data sanity, lookups by id and nickname, suggestions, mentions in sentences."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from tinyforge.boards import (
    Board,
    all_boards,
    find_board_mentions,
    get_board,
    normalize_board_name,
    suggest_boards,
)
from tinyforge.errors import UnknownBoardError

PIOARDUINO = (
    "https://github.com/pioarduino/platform-espressif32/releases/download/55.03.311/"
    "platform-espressif32.zip"
)

# fmt: off
REQUIRED_IDS = [
    "nano33ble", "esp32dev", "esp32cam", "esp32-s3-devkitc-1", "seeed_xiao_esp32s3", "pico",
    "rpipicow", "nucleo_f401re", "nucleo_l476rg", "disco_f746ng", "portenta_h7_m7", "teensy41",
]
# fmt: on

# (id, flash_bytes, ram_bytes, f_cpu, mcu): upload.maximum_size / upload.maximum_ram_size /
# build.f_cpu / build.mcu from the PlatformIO board manifests.
MANIFEST_FIGURES = [
    ("nano33ble", 983040, 262144, 64_000_000, "nrf52840"),
    ("esp32dev", 4194304, 327680, 240_000_000, "esp32"),
    ("esp32cam", 4194304, 327680, 240_000_000, "esp32"),
    ("esp32-s3-devkitc-1", 8388608, 327680, 240_000_000, "esp32s3"),
    ("seeed_xiao_esp32s3", 8388608, 327680, 240_000_000, "esp32s3"),
    ("esp32-c3-devkitm-1", 4194304, 327680, 160_000_000, "esp32c3"),
    ("pico", 2097152, 262144, 133_000_000, "rp2040"),
    ("rpipicow", 2097152, 262144, 133_000_000, "rp2040"),
    ("nucleo_f401re", 524288, 98304, 84_000_000, "stm32f401ret6"),
    ("nucleo_l476rg", 1048576, 131072, 80_000_000, "stm32l476rgt6"),
    ("disco_f746ng", 1048576, 327680, 216_000_000, "stm32f746ngh6"),
    ("nucleo_h743zi", 2097152, 524288, 400_000_000, "stm32h743zit6"),
    ("portenta_h7_m7", 786432, 523624, 480_000_000, "stm32h747xih6"),
    ("nicla_vision", 786432, 523624, 480_000_000, "stm32h747xih6"),
    ("teensy41", 8126464, 524288, 600_000_000, "imxrt1062"),
    ("xiaoblesense", 811008, 237568, 64_000_000, "nrf52840"),
    ("adafruit_feather_nrf52840", 815104, 248832, 64_000_000, "nrf52840"),
]

# fmt: off
FAMILIES = {"nrf52", "esp32", "esp32s3", "esp32c3", "rp2040", "stm32f4", "stm32l4", "stm32f7",
            "stm32h7", "imxrt1062"}
CPUS = {"cortex-m4f", "cortex-m7", "cortex-m0plus", "cortex-m33", "xtensa-lx6", "xtensa-lx7",
        "riscv32"}
# fmt: on
MIB = 1024 * 1024


# -- data sanity ------------------------------------------------------------------------------


def test_every_required_board_is_present() -> None:
    ids = {b.id for b in all_boards()}
    missing = set(REQUIRED_IDS) - ids
    assert not missing


def test_all_boards_sorted_and_unique() -> None:
    ids = [b.id for b in all_boards()]
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids))


def test_all_boards_returns_a_fresh_list_of_the_cached_boards() -> None:
    first, second = all_boards(), all_boards()
    assert first == second and first is not second
    assert all(a is b for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("board", all_boards(), ids=lambda b: b.id)
def test_board_fields_are_sane(board: Board) -> None:
    assert board.flash_bytes > 0 and board.ram_bytes > 0 and board.f_cpu > 0
    assert board.psram_bytes >= 0
    assert board.framework == "arduino"
    assert board.family in FAMILIES
    assert board.cpu in CPUS
    assert board.name and board.vendor and board.mcu and board.platform
    assert isinstance(board.aliases, tuple) and board.aliases
    # owner/name with a version constraint (a lib_deps entry, or the version a core bundles).
    owner_name, _, version = board.tflm_library.partition("@")
    assert owner_name.count("/") == 1 and version


@pytest.mark.parametrize(("board_id", "flash", "ram", "f_cpu", "mcu"), MANIFEST_FIGURES)
def test_manifest_figures(board_id: str, flash: int, ram: int, f_cpu: int, mcu: str) -> None:
    board = get_board(board_id)
    assert (board.flash_bytes, board.ram_bytes, board.f_cpu, board.mcu) == (flash, ram, f_cpu, mcu)


@pytest.mark.parametrize(
    ("board_id", "psram"),
    [
        ("esp32cam", 4 * MIB),
        ("seeed_xiao_esp32s3", 8 * MIB),
        ("portenta_h7_m7", 8 * MIB),
        ("esp32dev", 0),
        ("nano33ble", 0),
        ("esp32-s3-devkitc-1", 0),
    ],
)
def test_psram(board_id: str, psram: int) -> None:
    assert get_board(board_id).psram_bytes == psram


@pytest.mark.parametrize(
    ("board_id", "platform", "family", "cpu"),
    [
        ("nano33ble", "nordicnrf52", "nrf52", "cortex-m4f"),
        ("esp32dev", PIOARDUINO, "esp32", "xtensa-lx6"),
        ("seeed_xiao_esp32s3", PIOARDUINO, "esp32s3", "xtensa-lx7"),
        ("esp32-c3-devkitm-1", PIOARDUINO, "esp32c3", "riscv32"),
        ("pico", "raspberrypi", "rp2040", "cortex-m0plus"),
        ("nucleo_l476rg", "ststm32", "stm32l4", "cortex-m4f"),
        ("disco_f746ng", "ststm32", "stm32f7", "cortex-m7"),
        ("teensy41", "teensy", "imxrt1062", "cortex-m7"),
    ],
)
def test_platform_family_cpu(board_id: str, platform: str, family: str, cpu: str) -> None:
    board = get_board(board_id)
    assert (board.platform, board.family, board.cpu) == (platform, family, cpu)


def test_esp32_families_use_espressifs_tflm_and_others_the_arduino_one() -> None:
    for board in all_boards():
        if board.family.startswith("esp32"):
            # Bundled in the Arduino-ESP32 3.x core, which only the pioarduino platform ships.
            assert board.tflm_library.startswith("espressif/esp-tflite-micro@")
            assert board.platform == PIOARDUINO
        else:
            assert board.tflm_library.startswith("spaziochirale/Chirale_TensorFLowLite@")


def test_names_and_aliases_are_unique_across_boards() -> None:
    owner: dict[str, str] = {}
    for board in all_boards():
        for name in {normalize_board_name(n) for n in (board.id, *board.aliases)}:
            assert owner.setdefault(name, board.id) == board.id, name


def test_alias_letters_and_digits_are_unique_too() -> None:
    """Free-text matching ignores every separator, so those keys must not collide either."""
    owner: dict[str, str] = {}
    for board in all_boards():
        for name in (board.id, *board.aliases):
            key = "".join(ch for ch in name.lower() if ch.isalnum())
            assert owner.setdefault(key, board.id) == board.id, name


def test_board_is_a_plain_frozen_dataclass() -> None:
    board = get_board("pico")
    # `tinyforge boards --json` prints vars(board): no __slots__.
    assert set(vars(board)) == {f.name for f in dataclasses.fields(Board)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        board.ram_bytes = 1  # type: ignore[misc]


def test_every_family_has_runtime_costs() -> None:
    table = Path(__file__).resolve().parents[1] / "server/tinyforge/check/runtime_costs.toml"
    families = tomllib.loads(table.read_text())["families"]
    assert {b.family for b in all_boards()} <= set(families)


# -- lookups ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "board_id"),
    [
        ("nano33ble", "nano33ble"),
        ("NANO33BLE", "nano33ble"),
        ("Nano 33 BLE Sense", "nano33ble"),
        ("Arduino Nano 33 BLE", "nano33ble"),
        ("nano-33-ble", "nano33ble"),
        ("ESP32-CAM", "esp32cam"),
        ("esp32 cam", "esp32cam"),
        ("AI Thinker ESP32-CAM", "esp32cam"),
        ("Pi Pico", "pico"),
        ("Raspberry Pi Pico", "pico"),
        ("Pico W", "rpipicow"),
        ("pico_w", "rpipicow"),
        ("Nucleo F401RE", "nucleo_f401re"),
        ("NUCLEO-F401RE", "nucleo_f401re"),
        ("Nucleo-L476RG", "nucleo_l476rg"),
        ("STM32F746 discovery", "disco_f746ng"),
        ("32F746G-DISCO", "disco_f746ng"),
        ("Teensy 4.1", "teensy41"),
        ("teensy_41", "teensy41"),
        ("Portenta H7", "portenta_h7_m7"),
        ("XIAO ESP32S3", "seeed_xiao_esp32s3"),
        ("xiao-esp32s3", "seeed_xiao_esp32s3"),
        ("ESP32-S3 DevKitC", "esp32-s3-devkitc-1"),
        ("ESP32 DevKit", "esp32dev"),
        ("ESP32 dev board", "esp32dev"),
        ("  esp32  ", "esp32dev"),
        ("Nicla Vision", "nicla_vision"),
        ("Nucleo H743ZI2", "nucleo_h743zi"),
        ("ESP32-C3", "esp32-c3-devkitm-1"),
        ("XIAO nRF52840 Sense", "xiaoblesense"),
        ("Feather nRF52840", "adafruit_feather_nrf52840"),
    ],
)
def test_get_board_by_id_or_alias(name: str, board_id: str) -> None:
    assert get_board(name).id == board_id


# "nano 33" is a nickname inside sentences only: as an id, "nano33" is a truncated "nano33ble".
@pytest.mark.parametrize(
    "name", ["nano33", "nano 33", "esp32cm", "arduino uno", "", "   ", "bluepill"]
)
def test_get_board_unknown_raises_with_suggestions(name: str) -> None:
    with pytest.raises(UnknownBoardError) as info:
        get_board(name)
    assert info.value.name == name.strip()
    assert "tinyforge boards" in str(info.value)


def test_unknown_board_message_lists_the_closest() -> None:
    with pytest.raises(UnknownBoardError) as info:
        get_board("nano33")
    assert info.value.suggestions[0] == "nano33ble"
    assert "Did you mean: nano33ble" in str(info.value)


# -- suggestions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "first"),
    [
        ("nano33", "nano33ble"),
        ("esp32cm", "esp32cam"),
        ("esp32-cma", "esp32cam"),
        ("picow", "rpipicow"),
        ("pico-w", "rpipicow"),
        ("teensy4", "teensy41"),
        ("tensy 4.1", "teensy41"),
        ("nucleo f401", "nucleo_f401re"),
        ("nucleo_l476", "nucleo_l476rg"),
        ("portenta", "portenta_h7_m7"),
        ("esp32s3 devkit", "esp32-s3-devkitc-1"),
        ("xiao esp32-s3 sense", "seeed_xiao_esp32s3"),
        ("disco f746", "disco_f746ng"),
        ("esp32dev1", "esp32dev"),
    ],
)
def test_suggestions_for_typos(typo: str, first: str) -> None:
    suggestions = suggest_boards(typo)
    assert suggestions and suggestions[0] == first


def test_suggestions_respect_limit_and_are_distinct() -> None:
    assert len(suggest_boards("esp32", limit=2)) == 2
    many = suggest_boards("esp32", limit=10)
    assert len(many) == len(set(many))
    assert suggest_boards("esp32", limit=0) == []


def test_no_suggestions_for_nothing_alike() -> None:
    assert suggest_boards("") == []
    assert suggest_boards("zzzzqqqq") == []


# -- mentions in free text --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("Recognize digits on an Arduino Nano 33 BLE Sense", ["nano33ble"]),
        ("deploy to my Arduino Nano33 BLE sense please", ["nano33ble"]),
        ("it runs on my nano 33", ["nano33ble"]),
        ("flash it to the ESP32 CAM", ["esp32cam"]),
        ("an esp32-cam board", ["esp32cam"]),
        ("AI-Thinker ESP32 CAM with OV2640", ["esp32cam"]),
        ("on a Pico W", ["rpipicow"]),
        ("on a pico", ["pico"]),
        ("my Raspberry Pi Pico, not the Pi Pico W", ["pico", "rpipicow"]),
        ("a XIAO ESP32S3 Sense", ["seeed_xiao_esp32s3"]),
        (
            "compare the XIAO ESP32S3 and an ESP32-S3 DevKitC",
            ["seeed_xiao_esp32s3", "esp32-s3-devkitc-1"],
        ),
        ("the ESP32-S3 devkit", ["esp32-s3-devkitc-1"]),
        ("on the esp32", ["esp32dev"]),
        ("NUCLEO-F401RE or Nucleo L476RG", ["nucleo_f401re", "nucleo_l476rg"]),
        ("a 32F746G-DISCO kit", ["disco_f746ng"]),
        ("run on Teensy 4.1.", ["teensy41"]),
        ("Portenta H7 with vision shield", ["portenta_h7_m7"]),
        ("ESP32-C3 SuperMini", ["esp32-c3-devkitm-1"]),
        ("nothing here", []),
        ("picosecond timing", []),
        ("a nanosecond", []),
        ("an ESP32-S2 board", []),
        ("the new Raspberry Pi Pico 2.", []),
        ("Portenta X8", []),
    ],
)
def test_find_board_mentions(text: str, ids: list[str]) -> None:
    assert [m.board.id for m in find_board_mentions(text)] == ids


def test_mentions_carry_positions_and_original_text() -> None:
    text = "Train on data.csv, then flash the ESP32 CAM and later a Pico W."
    mentions = find_board_mentions(text)
    assert [(m.board.id, m.text) for m in mentions] == [
        ("esp32cam", "ESP32 CAM"),
        ("rpipicow", "Pico W"),
    ]
    for m in mentions:
        assert text[m.start : m.end] == m.text
    assert mentions[0].start < mentions[1].start


def test_longest_mention_wins_on_overlap() -> None:
    (mention,) = find_board_mentions("use the Seeed XIAO ESP32S3")
    assert mention.board.id == "seeed_xiao_esp32s3"
    assert mention.text == "Seeed XIAO ESP32S3"


def test_runtime_costs_use_the_measured_core_figures() -> None:
    """bench/device.py --update-costs writes [cores.*]: a family takes its core's table."""
    import tomllib

    from tinyforge.check import runtime_costs

    table = tomllib.loads(
        (
            Path(__file__).resolve().parents[1] / "server/tinyforge/check/runtime_costs.toml"
        ).read_text()
    )
    m4f = table["cores"]["cortex-m4f"]
    nrf52 = runtime_costs("nrf52")
    assert nrf52.measured_core == "cortex-m4f"
    assert nrf52.tflm_flash == m4f["tflm_flash"] + m4f["kernel_library_flash"]
    assert nrf52.op_flash["CONV_2D"] == m4f["op_flash"]["CONV_2D"]
    assert runtime_costs("rp2040").measured_core == "cortex-m0plus"
    assert runtime_costs("imxrt1062").measured_core == "cortex-m7"
    esp32 = runtime_costs("esp32")
    assert esp32.measured_core is None and esp32.tflm_flash == table["default"]["tflm_flash"]
