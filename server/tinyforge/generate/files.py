"""Write generated files without ever overwriting a user's work silently.

`.tinyforge/manifest.json` records the hash of every file as TinyForge last wrote it. A file
whose content still has that hash is ours to refresh; a file the user changed (or wrote
themselves) is kept, and the new version goes beside it as `<name>.tinyforge-new`; unless the
file has regenerated sections (`generate.sections`): then only those are refreshed in place and
the user's lines around them stay. The manifest keeps the hash of the pure generated text, so a
merged file is never mistaken for an untouched one (and fully overwritten) later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

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
    for relpath, text in files.items():
        path = project_dir / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
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
                        path.write_text(merged, encoding="utf-8")
                        result.merged.append(relpath)
                    else:
                        result.unchanged.append(relpath)
                    stale = project_dir / (relpath + NEW_SUFFIX)
                    if stale.exists():
                        stale.unlink()
                    continue
                (project_dir / (relpath + NEW_SUFFIX)).write_text(text, encoding="utf-8")
                result.kept.append(relpath)
                continue
        path.write_text(text, encoding="utf-8")
        manifest[relpath] = _digest(text)
        result.written.append(relpath)
        stale = project_dir / (relpath + NEW_SUFFIX)
        if stale.exists():
            stale.unlink()
    (project_dir / MANIFEST).parent.mkdir(exist_ok=True)
    (project_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), "utf-8")
    return result
