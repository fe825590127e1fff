"""Read what `pio` and the GNU toolchain print: compiler errors, memory overflows, size figures.

Every parser takes lines as PlatformIO streams them (stdout and stderr merged) and never raises:
a line it does not know is ignored. The patterns follow the tools' own wording (GCC, GNU ld,
ESP-IDF's linker scripts, PlatformIO's `piosize`/`pioupload` and its package managers).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# GNU ld quotes names as `RAM' in the C locale and ‘RAM’ in UTF-8 ones; newer binutils use 'RAM'.
_Q_OPEN = "[`'‘\"]"
_Q_CLOSE = "['’\"]"

COMPILER_RE = re.compile(
    r"^(?P<file>[^\s:][^:]*?):(?P<line>\d+):(?:(?P<col>\d+):)?\s*"
    r"(?P<severity>fatal error|error|warning):\s*(?P<message>.+)$"
)
UNDEFINED_RE = re.compile(
    r"^(?P<file>[^\s:][^:]*?):(?:\((?P<section>[^)]*)\)|(?P<line>\d+))?:?\s*"
    r"(?P<message>undefined reference to .+)$"
)
REGION_OVERFLOW_RE = re.compile(
    rf"region {_Q_OPEN}(?P<region>[^`'‘’\"]+){_Q_CLOSE} overflowed by (?P<bytes>\d+) bytes?"
)
SECTION_NOT_FIT_RE = re.compile(
    rf"section {_Q_OPEN}(?P<section>[^`'‘’\"]+){_Q_CLOSE} will not fit in region "
    rf"{_Q_OPEN}(?P<region>[^`'‘’\"]+){_Q_CLOSE}"
)
# ESP-IDF's linker scripts add their own sentence before ld's figures.
ESP_SEGMENT_RE = re.compile(r"(?P<what>DRAM|IRAM|IROM|DROM) segment data does not fit")
# PlatformIO's own size check against board_upload.maximum_{ram_,}size.
PIO_SIZE_LIMIT_RE = re.compile(
    r"(?P<kind>data|program) size \((?P<used>\d+) bytes\) is greater than maximum allowed "
    r"\((?P<limit>\d+) bytes\)"
)
USAGE_RE = re.compile(
    r"^(?P<what>RAM|Flash):\s+\[[= ]*\]\s+(?P<percent>-?[\d.]+)%\s+"
    r"\(used (?P<used>\d+) bytes from (?P<total>\d+) bytes\)"
)
INSTALLING_RE = re.compile(
    r"^(?P<manager>Platform|Tool|Library) Manager: Installing (?P<spec>.+?)\s*$"
)
HTTP_ERROR_RE = re.compile(
    r"HTTPClientError|InternetConnectionError|ConnectionError|Name or service not known|"
    r"You are not connected to the Internet|Max retries exceeded",
    re.IGNORECASE,
)
UNKNOWN_PLATFORM_RE = re.compile(r"UnknownPlatform: Unknown development platform (?P<spec>.+)$")
UNKNOWN_BOARD_RE = re.compile(r"Unknown board ID '?(?P<board>[^'\s]+)'?")
RESULT_RE = re.compile(r"=+\s*\[(?P<result>SUCCESS|FAILED|ERROR|IGNORED)\]\s*Took (?P<secs>[\d.]+)")
# Upload tools that found no board, each in its own words.
NO_BOARD_PATTERNS = (
    "Please specify `upload_port`",
    "Couldn't find a board on the selected port",
    "No device found on",
    "could not open port",
    "the port doesn't exist",
    "Failed to connect to ESP",
    "No serial data received",
    "No accessible RP2040 devices",
    "Couldn't find any ST-Link",
    "open failed",
    "No such file or directory: '/dev/",
)

# Linker regions that hold code and constants; every other region is RAM of some kind
# (RAM, SRAM, DTCMRAM, RAM_D1, dram0_0_seg, iram0_0_seg …).
_FLASH_REGION_HINTS = ("flash", "rom", "irom", "drom", "text", "m_text", "code")


def region_resource(region: str) -> str:
    name = region.lower()
    return "flash" if any(hint in name for hint in _FLASH_REGION_HINTS) else "ram"


@dataclass(frozen=True)
class CompilerMessage:
    file: str
    line: int | None
    column: int | None
    severity: str  # "error" | "warning"
    message: str

    def path(self, project_dir: Path) -> Path:
        p = Path(self.file)
        return p if p.is_absolute() else (project_dir / p)


@dataclass
class Overflow:
    """The image does not fit a memory region; `bytes` is by how much (when the tool says)."""

    region: str
    resource: str  # "ram" | "flash"
    bytes: int | None
    sections: list[str] = field(default_factory=list)
    source: str = "ld"  # "ld" (the linker) | "platformio" (its size check)
    limit: int | None = None
    used: int | None = None


@dataclass(frozen=True)
class Usage:
    used: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.total if self.total else 0.0


@dataclass
class PioLog:
    compiler: list[CompilerMessage] = field(default_factory=list)
    overflows: list[Overflow] = field(default_factory=list)
    ram: Usage | None = None
    flash: Usage | None = None
    installing: list[tuple[str, str]] = field(default_factory=list)  # (manager, spec)
    network_error: bool = False
    unknown_platform: str | None = None
    unknown_board: str | None = None
    no_board: str | None = None  # the upload tool's own line
    result: str | None = None  # SUCCESS | FAILED | ERROR
    seconds: float | None = None

    @property
    def errors(self) -> list[CompilerMessage]:
        return [m for m in self.compiler if m.severity != "warning"]

    def overflow(self, resource: str) -> Overflow | None:
        found = [o for o in self.overflows if o.resource == resource]
        # The linker's figure is exact; PlatformIO's size check only restates it.
        found.sort(key=lambda o: (o.source != "ld", o.bytes is None))
        return found[0] if found else None


class PioLogParser:
    """Feed lines one by one (as they stream) or all at once with `parse_pio_output`."""

    def __init__(self) -> None:
        self.log = PioLog()
        self._seen: set[CompilerMessage] = set()
        self._regions: dict[str, Overflow] = {}

    def _region(self, region: str) -> Overflow:
        if region not in self._regions:
            overflow = Overflow(region=region, resource=region_resource(region), bytes=None)
            self._regions[region] = overflow
            self.log.overflows.append(overflow)
        return self._regions[region]

    def feed(self, raw: str) -> None:
        line = _strip_ansi(raw).rstrip()
        if not line:
            return
        log = self.log
        if m := REGION_OVERFLOW_RE.search(line):
            self._region(m["region"]).bytes = int(m["bytes"])
            return
        if m := SECTION_NOT_FIT_RE.search(line):
            overflow = self._region(m["region"])
            if m["section"] not in overflow.sections:
                overflow.sections.append(m["section"])
            return
        if ESP_SEGMENT_RE.search(line):
            return  # ld's own lines that follow carry the region and the figure
        if m := PIO_SIZE_LIMIT_RE.search(line):
            used, limit = int(m["used"]), int(m["limit"])
            resource = "ram" if m["kind"] == "data" else "flash"
            log.overflows.append(
                Overflow(
                    region="RAM" if resource == "ram" else "Flash",
                    resource=resource,
                    bytes=used - limit,
                    source="platformio",
                    limit=limit,
                    used=used,
                )
            )
            return
        if m := USAGE_RE.match(line):
            usage = Usage(int(m["used"]), int(m["total"]))
            if m["what"] == "RAM":
                log.ram = usage
            else:
                log.flash = usage
            return
        if m := COMPILER_RE.match(line):
            severity = "error" if "error" in m["severity"] else "warning"
            col = int(m["col"]) if m["col"] else None
            self._add(CompilerMessage(m["file"], int(m["line"]), col, severity, m["message"]))
            return
        if (m := UNDEFINED_RE.match(line)) and not m["file"].endswith(("ld", "ld.exe")):
            line_no = int(m["line"]) if m["line"] else None
            self._add(CompilerMessage(m["file"], line_no, None, "error", m["message"]))
            return
        if m := INSTALLING_RE.match(line):
            log.installing.append((m["manager"], m["spec"]))
            return
        if m := UNKNOWN_PLATFORM_RE.search(line):
            log.unknown_platform = m["spec"].strip()
            return
        if m := UNKNOWN_BOARD_RE.search(line):
            log.unknown_board = m["board"]
            return
        if m := RESULT_RE.search(line):
            log.result = m["result"]
            log.seconds = float(m["secs"])
            return
        if HTTP_ERROR_RE.search(line):
            log.network_error = True
            return
        if log.no_board is None and any(p in line for p in NO_BOARD_PATTERNS):
            log.no_board = line.strip()

    def _add(self, message: CompilerMessage) -> None:
        if message not in self._seen:  # PlatformIO can print a failing file's errors twice
            self._seen.add(message)
            self.log.compiler.append(message)


def parse_pio_output(lines: Iterable[str]) -> PioLog:
    parser = PioLogParser()
    for line in lines:
        parser.feed(line)
    return parser.log


_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


# -- `pio pkg list -g` ----------------------------------------------------------------------


@dataclass(frozen=True)
class InstalledPackage:
    kind: str  # "platform" | "tool" | "library"
    name: str
    version: str
    required: str  # the spec it was installed from, e.g. "platformio/nordicnrf52" or a URL


_PKG_HEADER = {"Platforms": "platform", "Tools": "tool", "Libraries": "library"}
_PKG_LINE_RE = re.compile(
    r"^[├└─\s]*(?P<name>[^\s@]+) @ (?P<version>\S+)(?: \(required: (?P<required>.+)\))?\s*$"
)


def parse_pkg_list(lines: Iterable[str]) -> list[InstalledPackage]:
    """The top-level packages of `pio pkg list -g` (their own dependencies are indented deeper)."""
    kind = ""
    found: list[InstalledPackage] = []
    for raw in lines:
        line = _strip_ansi(raw).rstrip()
        if line.strip() in _PKG_HEADER:
            kind = _PKG_HEADER[line.strip()]
            continue
        if not kind or line[:1] not in {"├", "└"}:
            continue  # only the first level: what is installed, not what it depends on
        if m := _PKG_LINE_RE.match(line):
            found.append(
                InstalledPackage(kind, m["name"], m["version"], (m["required"] or "").strip())
            )
    return found


def spec_name(spec: str) -> str:
    """`platformio/nordicnrf52 @ ^10.4` → `nordicnrf52`; a URL → its last path part."""
    spec = spec.strip()
    if "://" in spec:
        tail = spec.rstrip("/").split("/")[-1]
        return re.sub(r"\.(git|zip|tar\.gz)$", "", tail.split("#")[0])
    name = spec.split("@", 1)[0].strip()
    return name.split("/")[-1].strip()


def spec_matches(spec: str, package: InstalledPackage) -> bool:
    wanted = spec.strip()
    if "://" in wanted:
        return package.required.strip() == wanted
    return spec_name(wanted).lower() == package.name.lower()


# -- `pio device list --json-output` ---------------------------------------------------------


@dataclass(frozen=True)
class SerialPort:
    port: str
    description: str
    hwid: str

    @property
    def is_usb(self) -> bool:
        """Boards connect over USB; `n/a` hwids are the machine's own UARTs (ttyS0 …)."""
        return "VID:PID" in self.hwid.upper() or "USB" in self.hwid.upper()

    def describe(self) -> str:
        what = self.description if self.description not in {"", "n/a"} else "no USB device"
        return f"{self.port} ({what})"


def parse_device_list(text: str) -> list[SerialPort]:
    try:
        data = json.loads(text)
    except ValueError:
        return []
    ports = []
    for item in data if isinstance(data, list) else []:
        if isinstance(item, dict) and item.get("port"):
            ports.append(
                SerialPort(
                    str(item["port"]), str(item.get("description", "")), str(item.get("hwid", ""))
                )
            )
    return ports


# -- the firmware's serial output ------------------------------------------------------------

PREDICTION_RE = re.compile(
    r"label: (?P<label>.+?)\s+score: (?P<score>-?[\d.]+)"
    r"(?:\s+threshold: (?P<threshold>-?[\d.]+))?\s+expected: (?P<expected>.+?)\s+"
    r"inference: (?P<us>\d+) us"
)


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    expected: str
    inference_us: int
    threshold: float | None = None


def parse_prediction(line: str) -> Prediction | None:
    m = PREDICTION_RE.search(_strip_ansi(line))
    if not m:
        return None
    threshold = float(m["threshold"]) if m["threshold"] else None
    return Prediction(m["label"], float(m["score"]), m["expected"], int(m["us"]), threshold)
