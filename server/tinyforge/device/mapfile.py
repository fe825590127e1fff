"""GNU ld map files (`-Wl,-Map`): the bytes each input section puts in flash and RAM.

Pure and never raising, like `deploy/parse.py`: a map it cannot read gives no sections. With
`-ffunction-sections -fdata-sections` every function and global has a section of its own
(`.rodata.g_model_data`, `.bss.tensor_arena`), so the split per object file and per symbol is
exact, before the linker's own padding (a few bytes per section).

Flash holds `.text`, `.rodata` and the initial values of `.data`; RAM holds `.data` and `.bss`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# " .text.foo  0x00001234  0x40 path/obj.o" on one line, or the name alone with the numbers
# on the next line when it is long.
_NAME_ONLY = re.compile(r"^ (\.\S+|COMMON)\s*$")
_ENTRY = re.compile(r"^ (\.\S+|COMMON)?\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*?)\s*$")
_MEMORY_MAP = "Linker script and memory map"
_DISCARDED = "Discarded input sections"

_FLASH_PREFIXES = (
    ".text",
    ".rodata",
    ".ARM.extab",
    ".ARM.exidx",
    ".init",
    ".fini",
    ".vectors",
    ".glue",
    ".vfp11",
    ".v4_bx",
    ".iplt",
    ".rel",
    ".eh_frame",
    ".preinit_array",
    ".init_array",
    ".fini_array",
)


@dataclass(frozen=True)
class InputSection:
    name: str  # ".rodata.g_model_data"
    address: int
    size: int
    source: str  # "main.o", "/x/libtflm.a(conv.o)"

    @property
    def region(self) -> str | None:
        """ "flash", "data" (flash and RAM), "bss" (RAM), or None (not in the image)."""
        name = self.name
        if name.startswith((".bss", "COMMON")):
            return "bss"
        if name.startswith(".data"):
            return "data"
        if name.startswith(_FLASH_PREFIXES):
            return "flash"
        return None

    @property
    def object_name(self) -> str:
        """The object file's name: the archive member for archives, else the file's name."""
        m = re.search(r"\(([^()]+)\)$", self.source)
        name = m.group(1) if m else self.source
        return name.replace("\\", "/").rsplit("/", 1)[-1]

    @property
    def symbol(self) -> str:
        """The symbol part of a per-symbol section name (`.bss.tensor_arena` → tensor_arena)."""
        for prefix in (".text.", ".rodata.", ".data.", ".bss."):
            if self.name.startswith(prefix):
                return self.name[len(prefix) :]
        return ""


def parse_map(text: str) -> list[InputSection]:
    """Every input section placed in the image (non-zero address and size)."""
    sections: list[InputSection] = []
    try:
        lines = text.splitlines()
        start = next((i for i, ln in enumerate(lines) if ln.startswith(_MEMORY_MAP)), None)
        if start is None:
            return []
        pending: str | None = None
        for line in lines[start + 1 :]:
            if line.startswith(_DISCARDED):
                break
            m = _NAME_ONLY.match(line)
            if m:
                pending = m.group(1)
                continue
            m = _ENTRY.match(line)
            name = (m.group(1) if m else None) or pending
            pending = None
            if not m or name is None:
                continue
            address, size = int(m.group(2), 16), int(m.group(3), 16)
            source = m.group(4)
            if size == 0 or (address == 0 and not name.startswith(".vectors")):
                continue
            if source.startswith(("*", "0x")) or (" " in source and "(" not in source):
                continue  # fill, symbol assignments
            sections.append(InputSection(name, address, size, source))
    except (ValueError, IndexError):
        return sections
    return sections


def flash_bytes(section: InputSection) -> int:
    return section.size if section.region in ("flash", "data") else 0


def ram_bytes(section: InputSection) -> int:
    return section.size if section.region in ("data", "bss") else 0
