"""Write generated files without ever overwriting a user's work silently.

`.tinyforge/manifest.json` records the hash of every file as TinyForge last wrote it. A file
whose content still has that hash is ours to refresh; a file the user changed (or wrote
themselves) is kept, and the new version goes beside it as `<name>.tinyforge-new`; unless the
file has regenerated sections (`generate.sections`): then only those are refreshed in place and
the user's lines around them stay. The manifest keeps the hash of the pure generated text, so a
merged file is never mistaken for an untouched one (and fully overwritten) later.

Every file is written atomically (a temporary file, then `os.replace`), and never through a link
that leads out of the project (a dangling `train.py` link must not create a file elsewhere).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from tinyforge.errors import TinyForgeError
from tinyforge.generate import sections

MANIFEST = Path(".tinyforge") / "manifest.json"
NEW_SUFFIX = ".tinyforge-new"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class WriteResult:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # user's edits preserved; new copy beside them
    merged: list[str] = field(default_factory=list)  # user's edits kept, TinyForge sections new

    def describe_kept(self) -> list[str]:
        return [
            f"kept your edited {name}; TinyForge's new version is in {name}{NEW_SUFFIX}"
            for name in self.kept
        ] + [
            f"kept your edits to {name}; refreshed only its TinyForge sections"
            for name in self.merged
        ]


def inside_project(project_dir: Path, relpath: str | PurePath) -> Path:
    """The real file `relpath` names, links resolved; refused when it leaves the project (a
    link, even a dangling one, to a file outside, or `..`)."""
    root = project_dir.resolve()
    target = (root / relpath).resolve()  # follows links, dangling ones included
    if not target.is_relative_to(root):
        raise TinyForgeError(
            f"{project_dir / relpath} leads to {target}, outside the project: TinyForge does not "
            "write through it; remove the link or give the project a real file."
        )
    return target


def write_atomic(project_dir: Path, relpath: str | PurePath, text: str) -> Path:
    """Write `text` to the project's `relpath` through a temporary file and `os.replace`: a
    reader (or a crash) sees the old file or the new one, never half of it."""
    target = inside_project(project_dir, relpath)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, 0o644 if not target.exists() else target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def load_manifest(project_dir: Path) -> dict[str, str]:
    path = project_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def is_pristine(project_dir: Path, relpath: str, manifest: dict[str, str] | None = None) -> bool:
    """True when the file is absent or exactly as TinyForge last generated it."""
    manifest = load_manifest(project_dir) if manifest is None else manifest
    path = project_dir / relpath
    if not path.exists():
        return True
    try:
        current = _digest(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return False
    return manifest.get(relpath) == current


def write_generated(
    project_dir: Path, files: dict[str, str], *, force: bool = False
) -> WriteResult:
    """Write `files` (relative path → text) into `project_dir`, respecting the user's edits."""
    project_dir.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(project_dir)
    result = WriteResult()
    for relpath in files:  # every target first: nothing is written when one would leave
        inside_project(project_dir, relpath)
        inside_project(project_dir, relpath + NEW_SUFFIX)
    for relpath, text in files.items():
        path = inside_project(project_dir, relpath)
        if path.exists():
            try:
                current = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                current = None
            if current == text:
                manifest[relpath] = _digest(text)
                result.unchanged.append(relpath)
                continue
            if not force and not is_pristine(project_dir, relpath, manifest):
                merged = sections.merge(current, text) if current is not None else None
                if merged is not None:
                    manifest[relpath] = _digest(text)
                    if merged != current:
                        write_atomic(project_dir, relpath, merged)
                        result.merged.append(relpath)
                    else:
                        result.unchanged.append(relpath)
                    _remove_stale(project_dir, relpath)
                    continue
                write_atomic(project_dir, relpath + NEW_SUFFIX, text)
                result.kept.append(relpath)
                continue
        write_atomic(project_dir, relpath, text)
        manifest[relpath] = _digest(text)
        result.written.append(relpath)
        _remove_stale(project_dir, relpath)
    write_atomic(project_dir, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    return result


def _remove_stale(project_dir: Path, relpath: str) -> None:
    stale = project_dir / (relpath + NEW_SUFFIX)
    if stale.is_symlink() or stale.exists():
        stale.unlink()  # unlinks a link itself, never what it points to
