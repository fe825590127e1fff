"""Planning without a dataset: the project's own data folder, and what to record into it.

A request that names no data still gets a project ("I want keyword spotting for yes and no"):
the plan points at `data/` inside the project, `tinyforge new` creates one sub-folder per class
and a `data/README.md` that says what to record, in which format and how much, and `build`
names the empty folders and what to put there until they are filled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyforge.spec import DatasetKind, ProjectSpec, Task

# Inside the project folder; a relative path the request never mentions.
DEFAULT_DATA_DIR = "data"
DEFAULT_CSV = f"{DEFAULT_DATA_DIR}/readings.csv"
README = "README.md"
# The planner's assumption for a default data folder starts with this: how `new` (and the
# path relocation) tell a planner's default from a path the user typed.
NO_DATASET_NOTE = "No dataset named:"
# A sensible start per class: enough for a first model and a meaningful test split.
START_SAMPLES = {
    Task.KEYWORD_SPOTTING: 50,
    Task.IMAGE_CLASSIFICATION: 50,
    Task.SENSOR_CLASSIFICATION: 100,
    Task.ANOMALY_DETECTION: 500,
}


def is_default_data(spec: ProjectSpec) -> bool:
    """Does the spec use the project's own data folder (the planner's default, no path typed)?"""
    path = (spec.dataset.path or "").replace("\\", "/").removeprefix("./").rstrip("/")
    return path in (DEFAULT_DATA_DIR, DEFAULT_CSV) and any(
        a.startswith(NO_DATASET_NOTE) for a in spec.assumptions
    )


@dataclass(frozen=True)
class Recording:
    """What one sample is, in words, for messages and data/README.md."""

    what: str  # "WAV clips", "images", "rows"
    format: str  # the file format in a sentence
    per_class: int


def recording(spec: ProjectSpec) -> Recording:
    per_class = START_SAMPLES.get(spec.task, 50)
    if spec.task is Task.KEYWORD_SPOTTING:
        return Recording(
            "WAV clips",
            "16 kHz mono WAV files of about 1 s each (16-bit PCM; other rates are resampled)",
            per_class,
        )
    if spec.dataset.kind is DatasetKind.FOLDER:
        shape = spec.input_shape
        size = f"{shape[0]}x{shape[1]}" if len(shape) == 3 else "the input size"
        mode = "grayscale" if len(shape) == 3 and shape[2] == 1 else "RGB"
        return Recording(
            "images",
            f"PNG or JPEG images of any size and colour mode (training turns them into {size} "
            f"{mode})",
            per_class,
        )
    label = spec.dataset.label_column
    columns = ", ".join([*(spec.dataset.features or ["one column per input reading"])])
    if label:
        columns += f", and the label in column '{label}'"
    return Recording("rows", f"a CSV file with a header row: {columns}", per_class)


def class_content(spec: ProjectSpec, name: str) -> str:
    """What the samples of one class show or say, in a few words."""
    if spec.task is Task.KEYWORD_SPOTTING:
        return {
            "silence": "background noise with nobody speaking",
            "unknown": "other words than the keywords",
        }.get(name, f"someone saying '{name}'")
    return f"pictures of '{name}'"


def readme(spec: ProjectSpec) -> str:
    """data/README.md: what to record, the format, how much."""
    rec = recording(spec)
    lines = [f"# Data for {spec.name}", "", f"Request: {spec.request}", ""]
    if spec.dataset.kind is DatasetKind.FOLDER:
        lines += [
            "One sub-folder per class; the folder name is the class name the firmware prints.",
            "",
            f"- Format: {rec.format}.",
            f"- How many: about {rec.per_class} per class is a sensible start; more, and "
            "recorded in the conditions the device will meet (place, light or noise, people), "
            "makes a better model.",
            "- Keep the classes about equally large.",
            "",
        ]
        if spec.classes:
            lines += ["Classes:", ""]
            lines += [f"- `{name}/`: {class_content(spec, name)}." for name in spec.classes]
        else:
            lines += ["Create one sub-folder per class, named after the class."]
    else:
        where = Path(spec.dataset.path or DEFAULT_CSV).name
        lines += [
            f"Record into `{where}`: {rec.format}.",
            "",
            f"- How many: about {rec.per_class} rows per class is a sensible start.",
            "- Every column except the label must be a number; one row is one reading.",
        ]
        if spec.classes:
            lines += [f"- Labels: {', '.join(spec.classes)}."]
        if spec.task is Task.ANOMALY_DETECTION:
            lines += ["- Normal operation only is enough; labelled anomalies help to check it."]
    lines += ["", "Then run `tinyforge build` in the project folder.", ""]
    return "\n".join(lines)


def safe_folder_name(name: str) -> bool:
    return bool(name.strip()) and name not in (".", "..") and not any(c in name for c in "/\\:")


def write_data_folder(spec: ProjectSpec, project_dir: Path) -> list[str]:
    """Create the project's data folder (sub-folders, README); never touches existing files.

    Returns the paths written, relative to the project.
    """
    if not is_default_data(spec):
        return []
    root = project_dir / DEFAULT_DATA_DIR
    written: list[str] = []
    root.mkdir(parents=True, exist_ok=True)
    if spec.dataset.kind is DatasetKind.FOLDER:
        for name in spec.classes or []:
            if not safe_folder_name(name):
                continue  # a class name is not a path: "a/b" or ".." must not escape data/
            folder = root / name
            if not folder.exists():
                folder.mkdir(parents=True)
                written.append(f"{DEFAULT_DATA_DIR}/{name}/")
    readme_path = root / README
    if not readme_path.exists():
        readme_path.write_text(readme(spec), encoding="utf-8")
        written.append(f"{DEFAULT_DATA_DIR}/{README}")
    return written


def data_files(spec: ProjectSpec) -> dict[str, str]:
    """The data folder as files (relative path → text), for an editor's WorkspaceEdit, which
    creates files, not folders: a `.gitkeep` makes each class folder."""
    if not is_default_data(spec):
        return {}
    files = {f"{DEFAULT_DATA_DIR}/{README}": readme(spec)}
    if spec.dataset.kind is DatasetKind.FOLDER:
        for name in spec.classes or []:
            if safe_folder_name(name):
                files[f"{DEFAULT_DATA_DIR}/{name}/.gitkeep"] = ""
    return files
