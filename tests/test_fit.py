"""`tinyforge fit`: a real search (Optuna, brief Keras training, int8 conversion, TFLM) on
digits and on the seed fruit CSV under tight budgets, locally and on a real local Ray."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FRUIT_CSV, run_cli, set_epochs
from tinyforge.boards import get_board
from tinyforge.check import check_budget
from tinyforge.fit import FitOptions, fit, pareto, parse_size
from tinyforge.fit.space import space_for
from tinyforge.spec import ProjectSpec

DIGITS = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"
# Tight enough that the static estimate rejects most of the digits space (widths above ~8).
DIGITS_BUDGET = "3KB"
DIGITS_ARGS = ("--budget-ram", DIGITS_BUDGET, "--trials", "4", "--epochs", "2", "--seed", "7")


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One digits project searched with the local engine through the CLI, and a copy of the
    project as it was before (for the Ray engine)."""
    root = tmp_path_factory.mktemp("fit")
    project = root / "digits"
    assert run_cli("new", DIGITS, "--out", str(project)).returncode == 0
    shutil.copytree(project, root / "digits_for_ray")
    before = (project / "train.py").read_text()
    run = run_cli("fit", str(project), *DIGITS_ARGS, "--json")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {
        "project": project,
        "copy": root / "digits_for_ray",
        "result": json.loads(run.stdout),
        "train_before": before,
    }


def _kept(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in result["trials"] if t["status"] == "kept"]


def _assert_fits(result: dict[str, Any], project: Path, ram_for_model: int) -> None:
    spec = ProjectSpec.load(project)
    board = get_board(spec.board)
    kept = _kept(result)
    assert kept, result["reasons"]
    for trial in kept:
        # Measured in TFLM after int8 conversion, against both the model's and the board's budget.
        assert trial["arena_bytes_target"] <= ram_for_model, trial
        verdict = check_budget(
            board=board,
            budget=spec.budget,
            model_bytes=trial["model_bytes"],
            arena_bytes_target=trial["arena_bytes_target"],
            ops=trial["ops"],
        )
        assert verdict.fits, (trial, verdict.violations)
        assert 0.0 <= trial["accuracy"] <= 1.0 and trial["macs"] > 0


def _assert_front(result: dict[str, Any]) -> None:
    kept = _kept(result)
    front = [t for t in kept if t["number"] in result["front"]]
    assert front and result["chosen"] in result["front"]
    for t in front:  # nothing kept dominates a front member
        assert not any(pareto.dominates(o, t) for o in kept if o is not t)
    for t in kept:  # and everything off the front is dominated
        if t["number"] not in result["front"]:
            assert any(pareto.dominates(o, t) for o in front)
    best = max(t["accuracy"] for t in kept)
    chosen = next(t for t in kept if t["number"] == result["chosen"])
    assert chosen["accuracy"] >= best - result["options"]["tolerance"] - 1e-9


def _assert_rejections(result: dict[str, Any], budget: int) -> int:
    rejected = [t for t in result["trials"] if t["status"] == "rejected"]
    counts = result["counts"]
    assert counts["rejected"] == len(rejected) > 0
    for t in rejected:
        # Rejected on the static estimate alone: never trained, never measured.
        assert not t.get("trained") and "accuracy" not in t and t["reasons"]
        assert t["static"]["arena_bytes_target"] > budget or t["static"]["model_bytes"] is None
    trained = [t for t in result["trials"] if t.get("trained")]
    assert counts["trained"] == len(trained)
    assert {t["status"] for t in trained} <= {"kept", "over-budget", "failed"}
    return len(rejected)


def test_digits_search_keeps_only_models_that_fit(digits: dict[str, Any]) -> None:
    result, project = digits["result"], digits["project"]
    budget = parse_size(DIGITS_BUDGET)
    assert result["counts"]["trained"] == 4
    _assert_fits(result, project, budget)
    _assert_front(result)
    assert _assert_rejections(result, budget) >= 4


def test_digits_search_writes_the_chosen_model_beside_train_py(digits: dict[str, Any]) -> None:
    result, project = digits["result"], digits["project"]
    assert (project / "train.py").read_text() == digits["train_before"]  # not without --apply
    assert result["written"] == ["train.py.tinyforge-new"]
    new = (project / "train.py.tinyforge-new").read_text()
    chosen = next(t for t in result["trials"] if t["number"] == result["chosen"])
    width = chosen["params"]["width"]
    assert f"layers.Conv2D({width}, 3" in new
    assert "Chosen by `tinyforge fit` for nano33ble" in new
    # Only the model changed: the rest is the user's train.py as it was.
    before_lines = set(digits["train_before"].splitlines())
    assert "def load_data()" in new and "EPOCHS = 40" in new
    assert len([ln for ln in new.splitlines() if ln not in before_lines]) < 25
    plot = project / "fit" / "pareto.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    saved = json.loads((project / "fit" / "fit.json").read_text())
    assert saved["front"] == result["front"] and saved["chosen"] == result["chosen"]


def test_ray_engine_finds_what_the_local_engine_found(
    digits: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    # Ray 2.60 turns token authentication on for a new local Ray and writes its token to
    # ~/.ray/auth_token: the test's own home, not the user's.
    monkeypatch.setenv("HOME", str(tmp_path))
    ray.init(
        address="local",  # a new head in this process, on loopback
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    try:
        options = FitOptions(
            trials=4, epochs=2, seed=7, budget_ram=parse_size(DIGITS_BUDGET), engine="ray"
        )
        on_ray = fit(digits["copy"], options).to_dict()
    finally:
        ray.shutdown()
    local = digits["result"]

    def same(result: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [
            (
                t["number"],
                t["status"],
                json.dumps(t["params"], sort_keys=True),
                t.get("accuracy"),
                t.get("arena_bytes_target"),
                t.get("model_bytes"),
            )
            for t in result["trials"]
        ]

    assert on_ray["engine"] == "ray" and local["engine"] == "local"
    assert same(on_ray) == same(local)
    assert on_ray["front"] == local["front"] and on_ray["chosen"] == local["chosen"]


def test_fruit_csv_search_applies_and_builds(tmp_path: Path) -> None:
    project = tmp_path / "fruit"
    request = (
        f"Classify fruit from RGB colour sensor readings in {FRUIT_CSV} "
        "(label column Fruit) on an Arduino Nano 33 BLE Sense"
    )
    assert run_cli("new", request, "--out", str(project)).returncode == 0
    spec_before = (project / "tinyforge.toml").read_text()
    budget = 2200  # bytes of tensor arena: MLPs of a few units only
    run = run_cli(
        "fit", str(project), "--budget-ram", str(budget), "--trials", "3", "--epochs", "3",
        "--apply", "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout)
    _assert_fits(result, project, budget)
    _assert_front(result)
    _assert_rejections(result, budget)
    assert result["space"]["family"] == "mlp"
    assert result["written"] == ["train.py"]
    chosen = next(t for t in result["trials"] if t["number"] == result["chosen"])
    script = (project / "train.py").read_text()
    assert f'layers.Dense({chosen["params"]["width"]}, activation="relu")' in script
    assert "normalizer.adapt(x_train)" in script  # raw sensor readings stay standardised
    assert (project / "tinyforge.toml").read_text() == spec_before
    # The written model is the user's now, and it builds and fits as the search said.
    set_epochs(project, 20)
    build = run_cli("build", str(project))
    assert build.returncode in (0, 4), build.stdout[-2000:] + build.stderr[-2000:]
    report = json.loads((project / "report.json").read_text())
    assert report["fits"] and report["arena_bytes_target"] == chosen["arena_bytes_target"]
    assert report["model_bytes"] == chosen["model_bytes"]


def test_parse_size() -> None:
    assert parse_size("64KB") == parse_size("64k") == parse_size("64 KiB") == 65536
    assert parse_size("1.5MB") == 1572864 and parse_size("4096") == 4096
    with pytest.raises(Exception, match="not a size"):
        parse_size("lots")


def test_image_folder_space_follows_the_data(tmp_path: Path) -> None:
    """Resolutions never above the smallest image, colour only when images have it."""
    from PIL import Image

    data = tmp_path / "shapes"
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (data / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40 + i, 36), colour).save(data / name / f"{i}.png")
    project = tmp_path / "proj"
    request = f"classify red vs blue images in {data} at 24x24 on a Pi Pico"
    assert run_cli("new", request, "--out", str(project)).returncode == 0
    spec = ProjectSpec.load(project)
    assert spec.input_shape == [24, 24, 3]
    space = space_for(spec, project, 2)
    dims = {d.name: d.choices for d in space.dimensions}
    # 1.5× fits in the smallest image (36×40); a quarter (6×6) is below 8 pixels.
    assert dims["resolution"] == ((12, 12), (18, 18), (24, 24), (36, 36))
    assert dims["channels"] == (1, 3)
    gray = space.build({**{d.name: d.choices[0] for d in space.dimensions}, "channels": 1})
    assert gray.input_shape[-1] == 1 and gray.architecture.layers[0].kind == "Conv2D"


def test_dataset_travels_to_workers_that_cannot_see_it(tmp_path: Path) -> None:
    """A Ray node elsewhere gets the data from the job; a local one links the original."""
    from tinyforge.fit.trial import TrialJob, _lay_out_data, pack_data

    remote, local = tmp_path / "remote", tmp_path / "local"
    remote.mkdir()
    local.mkdir()
    job = TrialJob(number=0, train_py="", data_name=FRUIT_CSV.name, data_path=str(FRUIT_CSV))
    assert _lay_out_data(job, local, None) == "linked"
    assert (local / "data" / FRUIT_CSV.name).resolve() == FRUIT_CSV.resolve()
    elsewhere = TrialJob(
        number=0, train_py="", data_name=FRUIT_CSV.name, data_path="/nowhere/fruit_data.csv"
    )
    assert _lay_out_data(elsewhere, remote, pack_data(FRUIT_CSV)) == "shipped"
    assert (remote / "data" / FRUIT_CSV.name).read_bytes() == FRUIT_CSV.read_bytes()
    (tmp_path / "third").mkdir()
    with pytest.raises(FileNotFoundError, match="not on this machine"):
        _lay_out_data(elsewhere, tmp_path / "third", None)
