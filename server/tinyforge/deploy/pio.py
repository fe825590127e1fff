"""Drive the real PlatformIO (`python -m platformio` from TinyForge's own environment).

Every call is a child process with a bounded wait, streamed output and cancel (`jobs.run`).
Offline, PlatformIO spends about a minute retrying its registry before it fails with an empty
`HTTPClientError`, so this module looks first: whether the env's platform is installed
(`pio pkg list -g`, a fraction of a second) and, when something must be downloaded, whether
PlatformIO's registry can be reached at all (a DNS look-up and a TCP connect of a few seconds).
When it cannot, the user gets one sentence naming what is missing and the command that installs
it once online, instead of a minute's wait and a traceback.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from tinyforge import jobs
from tinyforge.deploy import parse
from tinyforge.errors import TinyForgeError
from tinyforge.progress import NullProgress, Progress
from tinyforge.project import PLATFORMIO_INI, PioEnv, read_platformio_ini

# Hosts PlatformIO downloads platforms, tools and libraries from (platformio/registry/mirror.py).
REGISTRY_HOSTS = ("api.registry.platformio.org", "dl.registry.platformio.org")
PROBE_TIMEOUT = 3.0
LIST_TIMEOUT = 60.0
BUILD_TIMEOUT = 30 * 60.0  # a first ESP32 or mbed build compiles the whole core: minutes
UPLOAD_TIMEOUT = 5 * 60.0

# Upload protocols that do not go through a serial port (debug probes, USB mass storage, DFU).
NON_SERIAL_PROTOCOLS = (
    "stlink", "jlink", "cmsis-dap", "blackmagic", "picotool", "picoprobe", "mbed", "dfu",
    "teensy-gui", "teensy-cli", "esp-prog", "raspberrypi-swd", "ftdi", "olimex", "espota",
)  # fmt: skip
# Board families whose default upload protocol is one of those (ST-Link on Nucleo/Discovery,
# DFU on Portenta/Nicla, HalfKay on Teensy, picotool on RP2040): no serial port needed.
NON_SERIAL_FAMILIES = ("stm32", "imxrt1062", "rp2040")


class PioError(TinyForgeError):
    """PlatformIO cannot do the job here; the message says why in one sentence."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind  # pio-missing | no-env | platform-missing | offline | no-board | timeout
        super().__init__(message)


def pio_command(*args: str) -> list[str]:
    """`pio ARGS` as TinyForge runs it: the platformio package of this very environment."""
    return jobs.python_command("-m", "platformio", *args)


def _child_env() -> dict[str, str]:
    # The upgrade check runs after every pio command once a week and waits on the network
    # when offline; TinyForge pins PlatformIO in its own environment anyway.
    return {"PLATFORMIO_DISABLE_UPGRADE_CHECK": "true", "PYTHONIOENCODING": "utf-8"}


def ensure_pio() -> None:
    try:
        import platformio  # noqa: F401  (only whether it is installed)
    except ImportError as exc:
        raise PioError(
            "pio-missing",
            f"PlatformIO is not installed in {sys.prefix}: run `{sys.executable} -m pip install "
            "platformio`.",
        ) from exc


def quote(arg: str | Path) -> str:
    return shlex.quote(str(arg))


# -- the project's environment ---------------------------------------------------------------


@dataclass
class Target:
    project_dir: Path
    env: PioEnv

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def platform(self) -> str:
        return self.env.options.get("platform", "").strip()

    @property
    def board(self) -> str | None:
        return self.env.board


def target(project_dir: Path, env_name: str | None = None) -> Target:
    project_dir = Path(project_dir).resolve()
    ini_path = project_dir / PLATFORMIO_INI
    if not ini_path.is_file():
        raise PioError(
            "no-env",
            f"{project_dir} has no platformio.ini: run `tinyforge build {quote(project_dir)}` "
            "first, or give the folder of a PlatformIO project.",
        )
    ini = read_platformio_ini(ini_path)
    env = ini.env(env_name)
    if env is None:
        names = ", ".join(e.name for e in ini.envs) or "none"
        wanted = f"env '{env_name}'" if env_name else "a default env"
        raise PioError("no-env", f"platformio.ini has no {wanted} (its envs: {names}).")
    if not env.options.get("platform"):
        raise PioError("no-env", f"env:{env.name} in platformio.ini names no platform.")
    return Target(project_dir, env)


# -- is it installed, can it be downloaded ----------------------------------------------------


def registry_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether PlatformIO could download now: its registry (or the configured proxy) answers."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    hosts: list[tuple[str, int]] = []
    if proxy:
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        if parsed.hostname:
            hosts.append((parsed.hostname, parsed.port or 80))
    hosts += [(host, 443) for host in REGISTRY_HOSTS]
    deadline = time.monotonic() + timeout
    for host, port in hosts:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        with contextlib.suppress(OSError):
            socket.create_connection((host, port), timeout=left).close()
            return True
    return False


def installed_packages(
    project_dir: Path, cancel: threading.Event | None = None
) -> list[parse.InstalledPackage]:
    """`pio pkg list -g`, run in the project (so a `core_dir` set in its platformio.ini counts)."""
    result = _run_quiet(pio_command("pkg", "list", "-g"), project_dir, cancel, LIST_TIMEOUT)
    return parse.parse_pkg_list(result.tail)


def _run_quiet(
    cmd: Sequence[str], cwd: Path, cancel: threading.Event | None, timeout: float
) -> jobs.JobResult:
    try:
        return jobs.run(
            cmd, cwd=cwd, env=_child_env(), cancel=cancel, timeout=timeout, keep_lines=2000
        )
    except TimeoutError as exc:
        what = " ".join(cmd[3:])
        raise PioError("timeout", f"`pio {what}` did not answer in {timeout:.0f} s.") from exc


def platform_install_command(spec: str) -> str:
    return f"pio pkg install -g -p {quote(spec)}"


def project_install_command(t: Target) -> str:
    return f"pio pkg install -d {quote(t.project_dir)} -e {quote(t.name)}"


def missing_platform(t: Target, packages: list[parse.InstalledPackage]) -> bool:
    spec = t.platform
    if spec.startswith(("symlink://", "file://")):
        # A local folder: PlatformIO links it in place, nothing to download.
        return not Path(urlparse(spec).path).exists()
    platforms = [p for p in packages if p.kind == "platform"]
    return not any(parse.spec_matches(spec, p) for p in platforms)


def check_ready(t: Target, progress: Progress, cancel: threading.Event | None = None) -> list[str]:
    """Fail at once, in one sentence, when the build would wait on a registry it cannot reach.

    Returns notes for the user (what the first build will download) when the registry is there.
    """
    ensure_pio()
    progress.update(None, "checking installed PlatformIO platforms")
    packages = installed_packages(t.project_dir, cancel)
    notes: list[str] = []
    if missing_platform(t, packages):
        if not registry_reachable():
            raise PioError(
                "platform-missing",
                f"The PlatformIO platform {parse.spec_name(t.platform)} (for env:{t.name}) is "
                "not installed and PlatformIO's registry cannot be reached from here: when "
                f"online, run `{platform_install_command(t.platform)}` and build again.",
            )
        notes.append(
            f"installing PlatformIO's {parse.spec_name(t.platform)} platform and its toolchain "
            "(first build only)"
        )
    if not any(p.kind == "tool" and p.name == "tool-scons" for p in packages):
        if not registry_reachable():
            raise PioError(
                "offline",
                "PlatformIO's build tool (tool-scons) is not installed and PlatformIO's registry "
                "cannot be reached from here: when online, run `pio pkg install -g -t "
                "platformio/tool-scons` and build again.",
            )
        notes.append("installing PlatformIO's build tool (tool-scons)")
    return notes


# -- running pio with a watch on downloads ----------------------------------------------------


@dataclass
class PioRun:
    returncode: int
    log: parse.PioLog
    tail: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class _Watch:
    """Stops a pio run the moment it starts a download that cannot succeed."""

    def __init__(self, t: Target, cancel: threading.Event | None) -> None:
        self.t = t
        self.user_cancel = cancel
        self.stop = threading.Event()
        self.reason: PioError | None = None
        self._reachable: bool | None = None
        self._done = threading.Event()
        self._relay = threading.Thread(target=self._follow_cancel, daemon=True)

    def __enter__(self) -> _Watch:
        self._relay.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._relay.join(timeout=1)

    def _follow_cancel(self) -> None:
        while not self._done.is_set():
            if self.user_cancel is not None and self.user_cancel.is_set():
                self.stop.set()
                return
            time.sleep(0.05)

    def installing(self, manager: str, spec: str) -> None:
        if spec.strip().startswith(("symlink://", "file://")):
            return  # a local folder is linked or copied: no download
        if self._reachable is None:
            self._reachable = registry_reachable()
        if self._reachable:
            return
        what = {"Platform": "platform", "Tool": "tool", "Library": "library"}[manager]
        # A platform alone; libraries and the platform's toolchains come with the project's
        # own install command (it installs what this env needs).
        if manager == "Platform":
            how = platform_install_command(self.t.platform)
        else:
            how = project_install_command(self.t)
        self.reason = PioError(
            "offline",
            f"PlatformIO needs the {what} {spec} for env:{self.t.name}, which is not installed, "
            f"and its registry cannot be reached from here: when online, run `{how}` and build "
            "again.",
        )
        self.stop.set()


def run_pio(
    t: Target,
    args: Sequence[str],
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    timeout: float = BUILD_TIMEOUT,
    on_line: Callable[[str], None] | None = None,
) -> PioRun:
    """`pio ARGS` in the project, parsed as it streams; downloads that cannot work stop it."""
    progress = progress or NullProgress()
    parser = parse.PioLogParser()
    with _Watch(t, cancel) as watch:

        def line(text: str) -> None:
            before = len(parser.log.installing)
            parser.feed(text)
            progress.log(text)
            if on_line is not None:
                on_line(text)
            status = _status(text)
            if status:
                progress.update(None, status)
            if len(parser.log.installing) > before:
                watch.installing(*parser.log.installing[-1])

        try:
            result = jobs.run(
                pio_command(*args),
                cwd=t.project_dir,
                env=_child_env(),
                on_line=line,
                cancel=watch.stop,
                timeout=timeout,
                keep_lines=400,
            )
        except jobs.Cancelled:
            if watch.reason is not None:
                raise watch.reason from None
            raise
        except TimeoutError as exc:
            raise PioError(
                "timeout",
                f"`pio {' '.join(args)}` was stopped after {timeout:.0f} s without finishing "
                "(pass a longer timeout for a first build that compiles a whole core).",
            ) from exc
    log = parser.log
    if not result.ok and (log.network_error or log.unknown_platform) and log.installing:
        spec = log.installing[-1][1]
        raise PioError(
            "offline",
            f"PlatformIO could not download {spec} for env:{t.name}: when online, run "
            f"`{project_install_command(t)}` and build again.",
        )
    return PioRun(result.returncode, log, result.tail, result.seconds)


def _status(line: str) -> str:
    text = line.strip()
    for prefix in ("Compiling ", "Linking ", "Building ", "Archiving ", "Indexing ", "Uploading",
                   "Checking size", "Looking for upload port", "Auto-detected"):  # fmt: skip
        if text.startswith(prefix):
            return text[:120]
    if " Manager: Installing " in text or text.startswith(("RAM:", "Flash:")):
        return text[:120]
    return ""


# -- serial ports --------------------------------------------------------------------------------


def serial_ports(cancel: threading.Event | None = None) -> list[parse.SerialPort]:
    """What `pio device list` sees (every serial port, boards and the machine's own UARTs)."""
    ensure_pio()
    result = _run_quiet(
        pio_command("device", "list", "--serial", "--json-output"), Path.cwd(), cancel, 30.0
    )
    return parse.parse_device_list("\n".join(result.tail))


def describe_ports(ports: list[parse.SerialPort]) -> str:
    if not ports:
        return "`pio device list` saw no serial port at all"
    return "`pio device list` saw only " + ", ".join(p.describe() for p in ports)


def uploads_over_serial(t: Target, family: str | None) -> bool:
    protocol = t.env.options.get("upload_protocol", "").strip().lower()
    if protocol:
        return not any(protocol.startswith(p) for p in NON_SERIAL_PROTOCOLS)
    return not (family and family.startswith(NON_SERIAL_FAMILIES))


def choose_port(
    t: Target,
    port: str | None,
    family: str | None,
    cancel: threading.Event | None = None,
    *,
    serial: bool = False,
) -> str | None:
    """The serial port to use, or a one-sentence error when no board is connected.

    `serial`: a serial port is needed whatever the upload protocol (the monitor).

    PlatformIO would otherwise pick any serial port, the machine's own UART included, and the
    upload tool would then time out talking to nothing.
    """
    configured = port or t.env.options.get("upload_port", "").strip() or None
    if configured and not configured.startswith(("/dev/", "COM")):
        return configured  # a network address (OTA) or a mounted disk: nothing to list
    if not configured and not serial and not uploads_over_serial(t, family):
        return None
    ports = serial_ports(cancel)
    if configured:
        if any(p.port == configured for p in ports) or Path(configured).exists():
            return configured
        raise PioError(
            "no-board",
            f"No board on {configured}: {describe_ports(ports)}; connect the board or pass the "
            "right --port.",
        )
    boards = [p for p in ports if p.is_usb]
    if not boards:
        raise PioError(
            "no-board",
            f"No board is connected: {describe_ports(ports)}, none of them a USB board; connect "
            "the board (or pass --port) and try again.",
        )
    return boards[0].port if len(boards) == 1 else None
