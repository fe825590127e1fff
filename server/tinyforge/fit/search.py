"""The search: Optuna proposes candidates, the static estimator screens them, engines train.

Optuna's TPE sampler (multi-objective: accuracy up, tensor arena and model bytes down, with
the budget as constraints) proposes candidates in rounds of `batch`. Within a round every
proposal is screened at once (static estimate, TFLM op list, budget): the infeasible ones
are told to Optuna as such and never trained; the feasible ones train side by side on the
engine. Results are told in the order the candidates were asked, never in the order they
finished, so a seed gives the same candidates and the same front on any engine.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Unpack

from tinyforge import datasets, generate, jobs
from tinyforge.boards import get_board
from tinyforge.check import kb
from tinyforge.errors import TinyForgeError
from tinyforge.fit import pareto
from tinyforge.fit.engines import Engine, make_engine
from tinyforge.fit.feasibility import Screen, Target, screen
from tinyforge.fit.space import Candidate, SearchSpace, space_for
from tinyforge.fit.trial import DATA_DIR, TrialJob, TrialRecord, TrialResult, TrialStatus
from tinyforge.fit.writeback import WriteBack, new_train_script
from tinyforge.lock import locked
from tinyforge.progress import NullProgress, Progress
from tinyforge.spec import DatasetKind, ProjectSpec, Task
from tinyforge.stages import Stages

FIT_DIR = "fit"
REPORT_FILE = "fit.json"
PLOT_FILE = "pareto.png"
STAGES = ("search", "front", "write")
# Proposals that only repeat earlier candidates before the space counts as exhausted.
STALE_LIMIT = 60


@dataclass
class FitOptions:
    trials: int = 20  # candidates trained (rejected ones are free and not counted)
    epochs: int = 8  # per trial; early stopping may end it sooner
    budget_ram: int | None = None  # bytes of tensor arena the model may take (32-bit target)
    budget_flash: int | None = None  # bytes the .tflite model may take
    engine: str = "local"
    address: str | None = None  # a Ray cluster (engine "ray")
    seed: int = 0
    batch: int = 4  # candidates per round: part of what the seed reproduces
    tolerance: float = 0.005  # accuracy given up for a smaller model (a fraction)
    workers: int | None = None  # trials at once (default: the machine's cores / cluster CPUs)

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise TinyForgeError("--trials must be at least 1.")
        if self.epochs < 1:
            raise TinyForgeError("--epochs must be at least 1.")
        if self.batch < 1:
            raise TinyForgeError("--batch must be at least 1.")


@dataclass
class FitResult:
    project_dir: Path
    board: str
    target: Target
    space: SearchSpace
    options: FitOptions
    trials: list[TrialRecord]
    front: list[TrialRecord]
    chosen: TrialRecord | None
    reasons: str
    write_back: WriteBack | None
    plot: Path | None
    report_path: Path
    seconds: float
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for t in self.trials if t["status"] == status)

    @property
    def kept(self) -> list[TrialRecord]:
        return [t for t in self.trials if t["status"] == "kept"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": str(self.project_dir),
            "board": self.board,
            "target": self.target.to_dict(),
            "engine": self.options.engine,
            "seed": self.options.seed,
            "options": {
                "trials": self.options.trials,
                "epochs": self.options.epochs,
                "batch": self.options.batch,
                "tolerance": self.options.tolerance,
            },
            "space": {
                "family": self.space.family,
                "dimensions": {d.name: list(d.choices) for d in self.space.dimensions},
                "size": self.space.size,
                "notes": self.space.notes,
            },
            "counts": {
                "proposed": len(self.trials),
                "rejected": self.count("rejected"),
                "trained": sum(1 for t in self.trials if t.get("trained")),
                "kept": self.count("kept"),
                "over_budget_measured": self.count("over-budget"),
                "failed": self.count("failed"),
                "lost": self.count("lost"),
                "duplicates": self.count("duplicate"),
            },
            "trials": self.trials,
            "front": [t["number"] for t in self.front],
            "chosen": self.chosen["number"] if self.chosen else None,
            "reasons": self.reasons,
            "plot": str(self.plot) if self.plot else None,
            "seconds": round(self.seconds, 1),
            "notes": self.notes,
        }


def parse_size(text: str) -> int:
    """'64KB', '64k', '1.5 MB', '65536' → bytes (KB = 1024 bytes, as board RAM is counted)."""
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmM]?)(i?[bB])?\s*", text or "")
    if not match:
        raise TinyForgeError(f"'{text}' is not a size like 64KB, 1.5MB or 65536.")
    value = float(match.group(1))
    unit = match.group(2).lower()
    factor = {"": 1, "k": 1024, "m": 1024 * 1024}[unit]
    size = int(value * factor)
    if size <= 0:
        raise TinyForgeError(f"'{text}' is not a positive size.")
    return size


def _num_classes(spec: ProjectSpec, project_dir: Path, summary: datasets.DatasetSummary) -> int:
    if spec.task is Task.ANOMALY_DETECTION:
        return 2
    classes = generate.expected_classes(spec, project_dir) or summary.classes
    return spec.num_classes or (len(classes) if classes else 2)


def _settled_spec(spec: ProjectSpec, summary: datasets.DatasetSummary) -> ProjectSpec:
    """A CSV's feature count as the build will settle it (the search must size that input)."""
    if (
        spec.dataset.kind is DatasetKind.CSV
        and summary.features
        and len(spec.input_shape) == 1
        and spec.input_shape[0] != summary.features
    ):
        return spec.model_copy(update={"input_shape": [summary.features]})
    return spec


def _trial_spec(spec: ProjectSpec, candidate: Candidate, epochs: int | None) -> ProjectSpec:
    update: dict[str, Any] = {"input_shape": list(candidate.input_shape)}
    if epochs is not None:
        update["training"] = spec.training.model_copy(update={"epochs": epochs})
    if spec.dataset.path:
        # The trial's copy of the data sits in its own folder (see trial.py).
        name = Path(spec.dataset.path).name
        update["dataset"] = spec.dataset.model_copy(update={"path": f"{DATA_DIR}/{name}"})
    return spec.model_copy(update=update)


def _objectives(figures: TrialRecord) -> list[float]:
    return [
        float(figures.get("accuracy") or 0.0),
        float(figures["arena_bytes_target"]) / 1024,
        float(figures["model_bytes"]) / 1024,
    ]


def _study(seed: int) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler = optuna.samplers.TPESampler(
        seed=seed,
        multivariate=True,
        # Candidates asked in one round are spread out instead of piling onto one guess.
        constant_liar=True,
    )
    return optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=sampler)


def _distributions(space: SearchSpace) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    dists: dict[str, Any] = {}
    for dim in space.dimensions:
        if all(isinstance(c, bool) for c in dim.choices):
            dists[dim.name] = CategoricalDistribution(list(dim.choices))
        else:
            # An index into ordered choices: TPE then sees that 16 lies between 8 and 32.
            dists[dim.name] = IntDistribution(0, len(dim.choices) - 1)
    return dists


def _decode(space: SearchSpace, raw: dict[str, Any]) -> dict[str, Any]:
    params = {}
    for dim in space.dimensions:
        value = raw[dim.name]
        params[dim.name] = value if isinstance(value, bool) else dim.choices[int(value)]
    return params


class _Search:
    def __init__(
        self,
        project_dir: Path,
        spec: ProjectSpec,
        space: SearchSpace,
        target: Target,
        options: FitOptions,
        progress: Progress,
        cancel: threading.Event | None,
    ) -> None:
        from tinyforge.memory.ops import tflm_supported_ops

        self.project_dir = project_dir
        self.spec = spec
        self.space = space
        self.target = target
        self.options = options
        self.progress = progress
        self.cancel = cancel
        self.supported = tflm_supported_ops()
        self.study = _study(options.seed)
        self.dists = _distributions(space)
        self.records: list[TrialRecord] = []
        self.by_key: dict[tuple[Any, ...], TrialRecord] = {}
        self.trained = 0
        self.distinct = space.distinct()
        self.notes: list[str] = []
        data = datasets.resolve_path(spec, project_dir)
        self.data_path = data if spec.dataset.path else None

    # -- bookkeeping --------------------------------------------------------------------

    def _record(
        self, trial: Any, proposed: Candidate, outcome: TrialStatus, **extra: Unpack[TrialRecord]
    ) -> TrialRecord:
        record: TrialRecord = {
            "number": trial.number,
            "params": {
                k: list(v) if isinstance(v, tuple) else v for k, v in proposed.params.items()
            },
            "candidate": proposed.describe(),
            "input_shape": list(proposed.input_shape),
            "status": outcome,
            **extra,
        }
        self.records.append(record)
        return record

    def _tell(self, trial: Any, record: TrialRecord, constraints: dict[str, float] | None) -> None:
        import optuna

        if record["status"] in ("failed", "lost") or constraints is None:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        # What TPE needs to steer away from models that cannot fit (≤ 0: satisfied).
        for name, value in constraints.items():
            trial.set_constraint(name, value)
        self.study.tell(trial, _objectives(record))

    def _job(self, number: int, candidate: Candidate) -> TrialJob:
        trial_spec = _trial_spec(self.spec, candidate, self.options.epochs)
        text = generate.render_train_script(
            trial_spec, self.project_dir, candidate.architecture, f"fit trial {number}"
        )
        return TrialJob(
            number=number,
            train_py=text,
            quantization=self.spec.quantization.value,
            data_name=Path(self.spec.dataset.path).name if self.spec.dataset.path else None,
            data_path=str(self.data_path) if self.data_path else None,
        )

    # -- the loop ------------------------------------------------------------------------

    def run(self, engine: Engine) -> None:
        options = self.options
        max_asks = options.trials * 30 + 100
        asks = stale = 0
        while self.trained < options.trials and asks < max_asks and stale < STALE_LIMIT:
            if self.cancel is not None and self.cancel.is_set():
                raise jobs.Cancelled("the search was cancelled")
            want = min(options.batch, options.trials - self.trained)
            batch: list[tuple[Any, Candidate, Screen, TrialRecord]] = []
            duplicates: list[tuple[Any, TrialRecord, TrialRecord]] = []
            while len(batch) < want and asks < max_asks and stale < STALE_LIMIT:
                if self.distinct is not None and len(self.by_key) >= self.distinct:
                    break  # every model of the space has been proposed
                trial = self.study.ask(self.dists)
                asks += 1
                candidate = self.space.build(_decode(self.space, trial.params))
                original = self.by_key.get(candidate.key)
                if original is not None:
                    stale += 1
                    record = self._record(trial, candidate, "duplicate", same_as=original["number"])
                    duplicates.append((trial, record, original))
                    continue
                stale = 0
                verdict = screen(
                    candidate,
                    self.space.task,
                    self.space.num_classes,
                    self.target,
                    self.supported,
                    self.spec.quantization.value,
                )
                if not verdict.feasible:
                    record = self._record(
                        trial,
                        candidate,
                        "rejected",
                        reasons=verdict.reasons,
                        static=verdict.to_dict(),
                        arena_bytes_target=verdict.arena_bytes_target or 0,
                        model_bytes=verdict.model_bytes or 0,
                        constraints=verdict.constraints,
                    )
                    self.by_key[candidate.key] = record
                    self._tell(trial, record, verdict.constraints)
                    self.progress.log(
                        f"#{trial.number} {candidate.describe()}: rejected before training "
                        f"({verdict.reasons[0]})"
                    )
                    continue
                record = self._record(trial, candidate, "pending", static=verdict.to_dict())
                self.by_key[candidate.key] = record
                batch.append((trial, candidate, verdict, record))
            if batch:
                self._train(engine, batch)
            for trial, record, original in duplicates:
                for key in pareto.OBJECTIVE_KEYS:  # the figures Optuna hears, the original's
                    if key in original:
                        record[key] = original[key]
                self._tell(
                    trial, {**record, "status": original["status"]}, original.get("constraints")
                )
            if not batch:
                break
            if engine.stopped:
                # E.g. the cluster lost its last worker: the search ends with what it has.
                self.notes.append(
                    f"The search stopped after {self.trained} trained trial(s): {engine.stopped}."
                )
                break
        lost = [r["number"] for r in self.records if r["status"] == "lost"]
        if lost:
            self.notes.append(
                f"{len(lost)} trial(s) lost with their Ray node: "
                + ", ".join(f"#{n}" for n in lost)
                + f" (why: {REPORT_FILE}, their 'reasons' and 'lost_attempts')."
            )
        if self.trained < options.trials and not engine.stopped:
            fits = sum(1 for r in self.records if r["status"] not in ("rejected", "duplicate"))
            self.notes.append(
                f"The search space holds no more candidates that fit: {fits} of "
                f"{len(self.by_key)} distinct models proposed could be trained."
            )

    def _train(
        self, engine: Engine, batch: list[tuple[Any, Candidate, Screen, TrialRecord]]
    ) -> None:
        jobs_ = [self._job(trial.number, candidate) for trial, candidate, _, _ in batch]
        for (trial, candidate, _, _), _job in zip(batch, jobs_, strict=True):
            self.progress.log(f"#{trial.number} {candidate.describe()}: training")
        total = self.options.trials
        finished = [self.trained]

        def done(index: int, result: TrialResult) -> None:
            trial, candidate, _, _ = batch[index]
            finished[0] += 1
            if result.get("lost"):
                message = f"#{trial.number} {candidate.describe()}: lost: {result['lost']}"
            elif result.get("ok"):
                message = (
                    f"#{trial.number} {candidate.describe()}: accuracy "
                    f"{100 * result['accuracy']:.1f}%, arena {kb(result['arena_bytes_target'])}, "
                    f"model {kb(result['model_bytes'])}"
                )
            else:
                message = f"#{trial.number} {candidate.describe()}: failed: {result.get('error')}"
            self.progress.log(message)
            self.progress.update(min(finished[0], total) / total, message)

        results = engine.run(jobs_, self.cancel, done)
        for (trial, _candidate, _screen, record), result in zip(batch, results, strict=True):
            record["seconds"] = result.get("seconds")
            # Where it ran (engine, node id and resource tags on Ray, host), and any run of it
            # that was lost with its node before it ran again.
            for key in ("ran_on", "lost_attempts"):
                if result.get(key):
                    record[key] = result[key]
            if result.get("lost"):
                # Never trained to the end: not counted, and Optuna hears it failed.
                record.update({"status": "lost", "reasons": [f"lost: {result['lost']}"]})
                self._tell(trial, record, None)
                continue
            self.trained += 1
            record["trained"] = True
            if not result.get("ok"):
                record.update(
                    {
                        "status": "failed",
                        "error": result.get("error"),
                        "log_tail": result.get("log_tail"),
                    }
                )
                self._tell(trial, record, None)
                continue
            record.update(
                {
                    "accuracy": result["accuracy"],
                    "float_accuracy": result["float_accuracy"],
                    "arena_bytes": result["arena_bytes"],
                    "arena_bytes_target": result["arena_bytes_target"],
                    "model_bytes": result["model_bytes"],
                    "macs": result["macs"],
                    "ops": result["ops"],
                    "epochs_run": result["epochs_run"],
                    "weights": result.get("params"),
                }
            )
            # The measurement has the last word: an estimate that was off cannot sneak a
            # model over the budget into the front.
            reasons = self.target.violations(
                arena_target=result["arena_bytes_target"],
                model_bytes=result["model_bytes"],
                ops=result["ops"],
            )
            missing = [op for op in result["ops"] if op not in self.supported]
            reasons += [f"op {op} is not in the installed TFLite Micro" for op in missing]
            constraints = self.target.constraints(
                arena_target=result["arena_bytes_target"],
                model_bytes=result["model_bytes"],
                ops=result["ops"],
            )
            constraints["tflm_ops"] = float(len(missing))
            record["constraints"] = constraints
            if reasons:
                record.update({"status": "over-budget", "reasons": reasons})
            else:
                record["status"] = "kept"
            self._tell(trial, record, constraints)


def _reasons(
    result_trials: list[TrialRecord],
    kept: list[TrialRecord],
    front: list[TrialRecord],
    chosen: TrialRecord | None,
    target: Target,
    options: FitOptions,
    quantization: str,
) -> str:
    rejected = sum(1 for t in result_trials if t["status"] == "rejected")
    trained = sum(1 for t in result_trials if t.get("trained"))
    limits = []
    if target.ram_for_model is not None:
        limits.append(f"tensor arena ≤ {kb(target.ram_for_model)}")
    if target.flash_for_model is not None:
        limits.append(f"model ≤ {kb(target.flash_for_model)}")
    limits.append(
        f"the whole firmware within RAM {kb(target.budget.ram_bytes)} and flash "
        f"{kb(target.budget.flash_bytes)}"
    )
    where = f"{target.board.id} ({', '.join(limits)})"
    if chosen is None:
        if not trained:
            smallest = min(
                (t for t in result_trials if t["status"] == "rejected"),
                key=lambda t: t.get("arena_bytes_target") or 0,
                default=None,
            )
            least = (
                f"; the smallest needs a {kb(smallest['arena_bytes_target'])} tensor arena "
                f"({smallest['reasons'][0]})"
                if smallest and smallest.get("reasons")
                else ""
            )
            return (
                f"No candidate fits {where}: all {rejected} proposed were rejected before "
                f"training by the static estimate{least}."
            )
        return (
            f"No candidate fits {where}: {rejected} were rejected before training, "
            f"{trained} trained; none of them fit when measured."
        )
    best = max(kept, key=lambda t: t["accuracy"])
    text = (
        f"Chosen by `tinyforge fit` for {where}: trial #{chosen['number']}, "
        f"{chosen['candidate']}: {quantization} accuracy {100 * chosen['accuracy']:.1f}% after "
        f"{chosen.get('epochs_run')} epoch(s) of the search's brief training, tensor arena "
        f"{kb(chosen['arena_bytes_target'])} (measured in TFLM), model "
        f"{kb(chosen['model_bytes'])}, {chosen['macs']:,} MACs. "
    )
    if best["number"] != chosen["number"]:
        text += (
            f"Within {100 * options.tolerance:.1f} points of the most accurate (#{best['number']}, "
            f"{100 * best['accuracy']:.1f}%), it needs "
            f"{kb(best['arena_bytes_target'] - chosen['arena_bytes_target'])} less RAM and "
            f"{kb(best['model_bytes'] - chosen['model_bytes'])} less flash. "
        )
    else:
        text += f"The most accurate of {len(kept)} candidate(s) that fit. "
    text += (
        f"It is on the Pareto front of accuracy, RAM, flash and MACs ({len(front)} model(s); "
        f"{FIT_DIR}/{PLOT_FILE}). {trained} candidate(s) trained, {rejected} rejected before "
        "training by the static estimate."
    )
    return text


# The whole search holds the project's lock: trials read its data and train.py while a build
# would rewrite them, and a second search would interleave fit/ (lock.py says who holds it).
@locked("fit")
def fit(
    project_dir: Path,
    options: FitOptions | None = None,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> FitResult:
    """Search the project's task for the most accurate models that fit; see the module doc."""
    started = time.monotonic()
    options = options or FitOptions()
    progress = progress or NullProgress()
    project_dir = Path(project_dir).resolve()
    spec = ProjectSpec.load(project_dir)
    if spec.model is not None:
        raise TinyForgeError(
            f"{project_dir} converts a model you brought ({spec.model.source}): there is no "
            "architecture to search."
        )
    board = get_board(spec.board)
    summary = datasets.validate(spec, project_dir)
    spec = _settled_spec(spec, summary)
    num_classes = _num_classes(spec, project_dir, summary)
    space = space_for(spec, project_dir, num_classes)
    target = Target(board, spec.budget, options.budget_ram, options.budget_flash)

    stages = Stages(STAGES, progress=progress, cancel=cancel)
    with stages.stage("search"):
        progress.update(
            0.0, f"{space.family} search, {options.trials} trials on the {options.engine} engine"
        )
        search = _Search(project_dir, spec, space, target, options, progress, cancel)
        engine = make_engine(
            options.engine,
            address=options.address,
            data_path=search.data_path,
            workers=options.workers,
        )
        try:
            search.run(engine)
        finally:
            engine.close()

    out = project_dir / FIT_DIR
    with stages.stage("front"):
        kept = [t for t in search.records if t["status"] == "kept"]
        front_trials = pareto.front(kept)
        on_front = {t["number"] for t in front_trials}
        for record in kept:
            record["on_front"] = record["number"] in on_front
        chosen = pareto.choose(front_trials, options.tolerance)
        reasons = _reasons(
            search.records, kept, front_trials, chosen, target, options, spec.quantization.value
        )
        plot_path = _plot(out, spec, board.id, search.records, kept, front_trials, chosen, target)
        if plot_path is not None:
            progress.update(1.0, f"front of {len(front_trials)}; plot {plot_path.name}")

    with stages.stage("write"):
        write_back = None
        if chosen is not None:
            write_back = _write_back(project_dir, spec, space, chosen, reasons)
        result = FitResult(
            project_dir=project_dir,
            board=board.id,
            target=target,
            space=space,
            options=options,
            trials=search.records,
            front=front_trials,
            chosen=chosen,
            reasons=reasons,
            write_back=write_back,
            plot=plot_path,
            report_path=out / REPORT_FILE,
            seconds=time.monotonic() - started,
            notes=[*space.notes, *search.notes],
        )
        result.report_path.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
        progress.update(1.0, "done")
        return result


def _plot(
    out: Path,
    spec: ProjectSpec,
    board: str,
    records: list[TrialRecord],
    kept: list[TrialRecord],
    front: list[TrialRecord],
    chosen: TrialRecord | None,
    target: Target,
) -> Path | None:
    """fit/pareto.png of the kept candidates, or None when none was kept."""
    rejected = sum(1 for t in records if t["status"] == "rejected")
    out.mkdir(exist_ok=True)
    (out / PLOT_FILE).unlink(missing_ok=True)  # never a stale plot beside a new report
    if not kept:
        return None
    return pareto.plot(
        out / PLOT_FILE,
        kept,
        front,
        chosen,
        title=f"{spec.name} on {board}: {len(kept)} kept, {rejected} rejected untrained",
        ram_limit=target.ram_for_model,
        flash_limit=target.flash_for_model,
        measured_over=[t for t in records if t["status"] == "over-budget"],
    )


def _write_back(
    project_dir: Path,
    spec: ProjectSpec,
    space: SearchSpace,
    chosen: TrialRecord,
    reasons: str,
) -> WriteBack:
    """train.py (and the spec, when the input shape changed) for the chosen candidate."""
    candidate = space.build(
        {k: tuple(v) if isinstance(v, list) else v for k, v in chosen["params"].items()}
    )
    final_spec = _trial_spec(spec, candidate, None).model_copy(update={"dataset": spec.dataset})
    rendered = generate.render_train_script(
        final_spec, project_dir, candidate.architecture, reasons
    )
    script = project_dir / generate.TRAIN_SCRIPT
    current = script.read_text(encoding="utf-8") if script.is_file() else None
    changed = tuple(candidate.input_shape) != tuple(ProjectSpec.load(project_dir).input_shape)
    text, whole = new_train_script(current, rendered, spec.task, candidate.input_shape, changed)
    return WriteBack(
        text,
        final_spec.to_toml() if changed else None,
        whole,
        rendered,
        spec.task,
        candidate.input_shape,
    )
