"""Values from a request, a dataset or the spec reach train.py and platformio.ini as data."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from tinyforge import generate
from tinyforge.boards import get_board
from tinyforge.errors import TinyForgeError
from tinyforge.generate.render_python import ini_value, py_docstring, py_literal
from tinyforge.spec import ProjectSpec

pytestmark = pytest.mark.security

INJECTION = 'digits """; import os; os.system("echo pwned"); """'
WINDOWS = r"digits from data in C:\Users\nick\digits"
NASTY = [INJECTION, WINDOWS, "ends with a backslash \\", 'a "quoted" one', "🍎 naïve\nline\x00"]


def _spec(request: str, **extra: object) -> ProjectSpec:
    data: dict[str, object] = {
        "task": "image_classification",
        "board": "nano33ble",
        "input_shape": [28, 28, 1],
        "dataset": {"kind": "digits"},
        "budget": {"ram_bytes": 262144, "flash_bytes": 983040},
        "num_classes": 10,
        "request": request,
    }
    data.update(extra)
    return ProjectSpec.from_dict(data)


def _module_level_code(tree: ast.Module) -> list[str]:
    """Module-level statements that import os or call os.system."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import) and any(a.name == "os" for a in node.names):
            found.append("import os")
        for sub in ast.walk(node) if not isinstance(node, ast.FunctionDef) else []:
            if isinstance(sub, ast.Attribute) and sub.attr == "system":
                found.append("os.system")
    return found


@pytest.mark.parametrize("request_text", NASTY)
def test_request_stays_in_the_docstring(request_text: str, tmp_path: Path) -> None:
    source = generate.render_project(_spec(request_text), tmp_path)["train.py"]
    code = compile(source, "train.py", "exec")  # no SyntaxError (unicodeescape) either
    tree = ast.parse(source)
    # train.py imports os itself once; the request adds no statement of its own.
    imports_os = [n for n in tree.body if isinstance(n, ast.Import) and n.names[0].name == "os"]
    assert len(imports_os) == 1
    assert "os.system" not in _module_level_code(tree)
    doc = ast.get_docstring(tree, clean=False)
    assert doc is not None and doc.startswith(f"Train the model for: {request_text}\n")
    assert code.co_consts[0] == doc


@pytest.mark.parametrize("request_text", NASTY)
def test_anomaly_script_keeps_the_request_as_text(request_text: str, tmp_path: Path) -> None:
    spec = _spec(
        request_text,
        task="anomaly_detection",
        input_shape=[6],
        dataset={"kind": "csv", "path": "C:\\data\\ré\"s'.csv", "label_column": 'l"\\'},
        num_classes=None,
    )
    source = generate.render_project(spec, tmp_path)["train.py"]
    compile(source, "train.py", "exec")
    tree = ast.parse(source)
    doc = ast.get_docstring(tree, clean=False)
    assert doc is not None and request_text in doc
    values = {
        t.id: ast.literal_eval(n.value.right if isinstance(n.value, ast.BinOp) else n.value)
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name) and t.id in {"DATASET", "LABEL_COLUMN"}
    }
    assert values == {"DATASET": "C:\\data\\ré\"s'.csv", "LABEL_COLUMN": 'l"\\'}


def test_labels_and_features_are_literals(tmp_path: Path) -> None:
    labels = ["🍎", "naïve", 'a "quoted" one', "back\\slash", "x'''\nimport os"]
    spec = _spec(
        "csv",
        task="sensor_classification",
        input_shape=[3],
        dataset={"kind": "csv", "path": "d.csv", "features": ['f"1', "f\\2", "f\n3"]},
        classes=labels,
        num_classes=len(labels),
    )
    source = generate.render_project(spec, tmp_path)["train.py"]
    tree = ast.parse(source)
    values = {
        t.id: ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.AnnAssign)
        for t in [n.target]
        if isinstance(t, ast.Name) and t.id in {"CLASSES", "FEATURES"}
    }
    assert values == {"CLASSES": labels, "FEATURES": ['f"1', "f\\2", "f\n3"]}


def test_python_helpers() -> None:
    for text in NASTY:
        assert ast.literal_eval(py_literal(text)) == text
        assert ast.literal_eval('"""' + py_docstring(text) + '"""') == text
        assert "\n" not in py_docstring(text)
    assert py_literal(["a", 1, None]) == '["a", 1, None]'
    assert py_literal((3,)) == "(3,)" and py_literal(("x", 2.5)) == '("x", 2.5)'
    with pytest.raises(ValueError):
        py_literal(float("nan"))
    with pytest.raises(TypeError):
        py_literal(object())


@pytest.mark.parametrize("value", ["x\n[env:evil]", "lib ; comment", "lib # comment", "a\rb"])
def test_ini_values_cannot_start_a_line_or_a_comment(value: str) -> None:
    with pytest.raises(TinyForgeError):
        ini_value(value)


def test_ini_board_value_with_a_newline_is_refused(tmp_path: Path) -> None:
    board = replace(get_board("nano33ble"), framework="arduino\nextra_scripts = x.py")
    with pytest.raises(TinyForgeError, match=r"platformio\.ini"):
        generate.render_platformio_ini(_spec("x"), board)
    ini = generate.render_platformio_ini(_spec("x"), get_board("nano33ble"))
    assert "framework = arduino\n" in ini
