"""Where a file belongs: the nearest tinyforge.toml or platformio.ini above it, and its budget.

The editor asks this for every open document; the CLI for `--project DIR`. A spec wins over
platformio.ini; PlatformIO's `board_upload.maximum_*` overrides tighten the board's limits.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path

from tinyforge.boards import Board, get_board
from tinyforge.errors import TinyForgeError
from tinyforge.spec import SPEC_FILENAME, Budget, ProjectSpec

PLATFORMIO_INI = "platformio.ini"


@dataclass
class PioEnv:
    name: str
    options: dict[str, str]

    @property
    def board(self) -> str | None:
        return self.options.get("board")

    def int_option(self, key: str) -> int | None:
        """A positive size (`board_upload.maximum_*`); None when unset or not a number."""
        value = self.options.get(key, "").strip()
        try:
            number = int(value, 0) if value else None
        except ValueError:
            return None
        if number is not None and number <= 0:
            raise TinyForgeError(
                f"platformio.ini [env:{self.name}] {key} = {value} is not a positive number "
                "of bytes."
            )
        return number


@dataclass
class PioIni:
    path: Path
    envs: list[PioEnv]
    default_envs: list[str]

    def env(self, name: str | None = None) -> PioEnv | None:
        wanted = name or (self.default_envs[0] if self.default_envs else None)
        for env in self.envs:
            if wanted is None or env.name == wanted:
                return env
        return None


def read_platformio_ini(path: Path, text: str | None = None) -> PioIni:
    """Parse platformio.ini the way PlatformIO does: `[env]` values are inherited by each env."""
    parser = configparser.ConfigParser(
        interpolation=None, strict=False, inline_comment_prefixes=(";",)
    )
    try:
        parser.read_string(
            text if text is not None else path.read_text(encoding="utf-8"), str(path)
        )
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        raise TinyForgeError(f"Cannot read {path}: {exc}") from exc
    common = dict(parser["env"]) if parser.has_section("env") else {}
    envs = [
        PioEnv(section.split(":", 1)[1], {**common, **dict(parser[section])})
        for section in parser.sections()
        if section.startswith("env:")
    ]
    default = parser.get("platformio", "default_envs", fallback="")
    default_envs = [e.strip() for e in default.replace("\n", ",").split(",") if e.strip()]
    return PioIni(path, envs, default_envs)


def budget_from_ini(env: PioEnv, board: Board) -> Budget:
    return Budget(
        ram_bytes=env.int_option("board_upload.maximum_ram_size") or board.ram_bytes,
        flash_bytes=env.int_option("board_upload.maximum_size") or board.flash_bytes,
    )


@dataclass
class ProjectContext:
    root: Path | None = None
    source: str = "none"  # "tinyforge.toml" | "platformio.ini" | "setting" | "none"
    spec: ProjectSpec | None = None
    board: Board | None = None
    budget: Budget | None = None
    problems: list[str] = field(default_factory=list)


def find_project_root(start: Path) -> Path | None:
    here = start if start.is_dir() else start.parent
    for folder in (here, *here.parents):
        if (folder / SPEC_FILENAME).is_file() or (folder / PLATFORMIO_INI).is_file():
            return folder
    return None


def load_context(start: Path, default_board: str | None = None) -> ProjectContext:
    """The project a path belongs to; problems are collected, never raised."""
    root = find_project_root(start)
    ctx = ProjectContext(root=root)
    if root is not None and (root / SPEC_FILENAME).is_file():
        try:
            ctx.spec = ProjectSpec.load(root)
            ctx.board = get_board(ctx.spec.board)
            ctx.budget = ctx.spec.budget
            ctx.source = SPEC_FILENAME
            return ctx
        except TinyForgeError as exc:
            ctx.problems.append(str(exc))
    if root is not None and (root / PLATFORMIO_INI).is_file():
        try:
            env = read_platformio_ini(root / PLATFORMIO_INI).env()
            if env is not None and env.board:
                ctx.board = get_board(env.board)
                ctx.budget = budget_from_ini(env, ctx.board)
                ctx.source = PLATFORMIO_INI
                return ctx
        except TinyForgeError as exc:
            ctx.problems.append(str(exc))
    if default_board:
        try:
            ctx.board = get_board(default_board)
            ctx.budget = Budget(ram_bytes=ctx.board.ram_bytes, flash_bytes=ctx.board.flash_bytes)
            ctx.source = "setting"
        except TinyForgeError as exc:
            ctx.problems.append(str(exc))
    return ctx
