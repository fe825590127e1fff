"""`tinyforge fit --engine ray --address`: a real Ray cluster of separate processes.

A head (`ray start --head`, no CPUs) and a worker (`ray start --address …` with its own
resource tag) run inside a network namespace this module makes, with Ray's token
authentication on; `tinyforge fit` runs as a user's command in the same namespace. The worker
stands for another machine: its Python has TinyForge's dependencies but not TinyForge, and
the project's data folder is hidden from it, so code and data must travel with the job.

On that cluster: trials run on the worker (fit.json says where) and find what the local engine
finds for the seed; a worker killed mid-search loses its trial, which runs again on the worker
left and the answer stands; Ctrl-C cancels the remote trials and leaves the cluster idle; a
worker whose Python lacks a package is named in one sentence; the editor's cancel does what
Ctrl-C does; when the last worker dies the
search ends with what it has and fit.json says which trials were lost and why. Every process
is stopped by its id, and none is left (tests/ray_cluster.py).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FRUIT_CSV, TINYFORGE, run_cli
from tests.ray_cluster import ADDRESS, Cluster, python_view, wait_for

pytestmark = pytest.mark.slow

DIGITS = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"
DIGITS_ARGS = ["--budget-ram", "3KB", "--trials", "4", "--epochs", "2", "--seed", "7"]
FRUIT_ARGS = ["--budget-ram", "2200", "--trials", "4", "--epochs", "3", "--seed", "3"]
# The worker machine's Python: every dependency, but no TinyForge of its own.
NO_TINYFORGE = ("tinyforge", "__editable__.tinyforge")
TRIAL_PROCESS = "tinyforge.fit.trial"


def _fit(cluster: Cluster, project: Path, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    run = cluster.client(
        [str(TINYFORGE), "fit", str(project), "--engine", "ray", "--address", ADDRESS, *args]
    )
    report = project / "fit" / "fit.json"
    data = json.loads(report.read_text()) if report.exists() else None
    return run.returncode, data, run.stdout[-3000:] + run.stderr[-4000:]


def _same(result: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What the seed decides: every candidate, its fate and its measured figures."""
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


def _output(search: subprocess.Popen[str]) -> str:
    """What an ended search printed (its last lines), for the failure message."""
    out, err = search.communicate(timeout=60)
    return out[-1500:] + err[-3000:]


def _trials_under(pid: int) -> list[int]:
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for child in children:
        try:
            if TRIAL_PROCESS in " ".join(child.cmdline()):
                out.append(child.pid)
        except psutil.Error:
            continue
    return out


@dataclass
class Lab:
    cluster: Cluster
    view: Path  # the worker machines' Python (no TinyForge)
    data: Path  # the project's data folder, hidden from worker "a"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Head + worker "a" (2 CPUs, tag worker_tag) in the module's own network namespace."""
    c = Cluster()
    data = tmp_path_factory.mktemp("data")
    try:
        c.open_namespace()
        c.generate_token()
        view = python_view(c.root / "worker-python", NO_TINYFORGE)
        c.start_head()
        c.start_worker("a", 2, "worker_tag", python=view, hide=[data])
        c.nodes({"cpus": [0, 2]})
        yield Lab(c, view, data)
    finally:
        c.stop()
        c.cleanup()


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> Cluster:
    return lab.cluster


@pytest.fixture(scope="module")
def fruit(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fruit CSV project whose data lies in a folder the worker cannot see; a copy of it
    for the local engine."""
    csv = lab.data / FRUIT_CSV.name
    shutil.copy(FRUIT_CSV, csv)
    root = tmp_path_factory.mktemp("fruit")
    request = (
        f"Classify fruit from RGB colour sensor readings in {csv} (label column Fruit) "
        "on an Arduino Nano 33 BLE Sense"
    )
    assert run_cli("new", request, "--out", str(root / "cluster")).returncode == 0
    shutil.copytree(root / "cluster", root / "local")
    return {"cluster": root / "cluster", "local": root / "local"}


def test_the_cluster_is_separate_processes_on_loopback_with_a_token(cluster: Cluster) -> None:
    # The namespace has loopback only: no address of the machine's network is reachable.
    addresses = cluster.addresses()
    assert "127.0.0.1" in addresses and " lo " in f" {addresses}".replace(":", " ")
    assert all(line.split()[1] == "lo" for line in addresses.splitlines())
    nodes = cluster.nodes()["nodes"]
    assert {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}
    tagged = [n for n in nodes if "worker_tag" in n["Resources"]]
    assert len(tagged) == 1 and tagged[0]["Resources"]["CPU"] == 2
    # Head and worker are processes of their own `ray start`, not this test's.
    assert cluster.head is not None and cluster.head.poll() is None
    assert cluster.workers["a"].poll() is None
    # A client with another token is refused (given up on after a few seconds, not Ray's
    # default minute of retries).
    wrong = cluster.root / "wrong_token"
    wrong.write_text("0" * 32)
    probe = f"import ray\nray.init(address='{ADDRESS}', log_to_driver=False)\nprint('IN')"
    run = cluster.client(
        [str(Path(TINYFORGE).parent / "python"), "-c", probe],
        timeout=300,
        RAY_AUTH_TOKEN_PATH=str(wrong),
        RAY_gcs_rpc_server_connect_timeout_s="5",
    )
    assert run.returncode != 0 and "IN" not in run.stdout
    assert "Authentication token is missing or incorrect" in run.stderr, run.stderr[-2000:]


def test_fit_without_the_token_says_how_to_give_it(cluster: Cluster, tmp_path: Path) -> None:
    project = tmp_path / "digits"
    assert run_cli("new", DIGITS, "--out", str(project)).returncode == 0
    run = cluster.client(
        [str(TINYFORGE), "fit", str(project), "--engine", "ray", "--address", ADDRESS,
         *DIGITS_ARGS],
        timeout=600,
        RAY_AUTH_MODE="",  # as for a user who has not set it
        RAY_gcs_rpc_server_connect_timeout_s="5",  # refused for sure after a few tries
    )  # fmt: skip
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-3000:]
    # Ray logs its refusals; TinyForge's own line follows them.
    ours = f"error: Cannot connect to the Ray cluster at {ADDRESS}"
    assert ours in run.stderr, run.stderr[-3000:]
    error = " ".join(run.stderr[run.stderr.index(ours) :].split())
    assert "set RAY_AUTH_MODE=token" in error and "Traceback" not in run.stderr
    assert not (project / "fit" / "fit.json").exists()


def test_trials_run_on_the_worker_with_code_and_data_from_the_job(
    cluster: Cluster, fruit: dict[str, Path]
) -> None:
    code, result, out = _fit(cluster, fruit["cluster"], *FRUIT_ARGS)
    assert code == 0, out + cluster.log_tail()
    assert result is not None and result["engine"] == "ray"
    trained = [t for t in result["trials"] if t.get("trained")]
    assert len(trained) == 4 and result["counts"]["lost"] == 0
    worker = next(n for n in cluster.nodes()["nodes"] if "worker_tag" in n["Resources"])
    for trial in trained:
        where = trial["ran_on"]
        # On the worker node, by its id and its tag.
        assert where["engine"] == "ray" and where["node_id"] == worker["NodeID"], where
        assert where["resources"] == ["worker_tag"] and where["node_ip"] == "127.0.0.1"
        # TinyForge came with the job (runtime_env py_modules), not from the worker's Python.
        assert "runtime_resources" in where["tinyforge"], where
        assert not where["tinyforge"].startswith(str(Path(__file__).parents[1]))
        # The data folder is empty to the worker: the trial trained on the copy that came
        # through the object store (and reached the local engine's figures below).
        assert where["data"] == "shipped", where

    # The same seed on the local engine finds the same candidates, figures and choice.
    local = run_cli("fit", str(fruit["local"]), *FRUIT_ARGS, "--json")
    assert local.returncode == 0, local.stdout[-2000:] + local.stderr[-2000:]
    on_local = json.loads(local.stdout)
    assert _same(result) == _same(on_local)
    assert result["front"] == on_local["front"] and result["chosen"] == on_local["chosen"]
    local_where = [t["ran_on"] for t in on_local["trials"] if t.get("trained")]
    assert {(w["engine"], w["data"]) for w in local_where} == {("local", "linked")}


@pytest.fixture(scope="module")
def digits_local(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the local engine finds for DIGITS_ARGS: the answer a disturbed cluster must give."""
    project = tmp_path_factory.mktemp("local") / "digits"
    assert run_cli("new", DIGITS, "--out", str(project)).returncode == 0
    local = run_cli("fit", str(project), *DIGITS_ARGS, "--json")
    assert local.returncode == 0, local.stdout[-2000:] + local.stderr[-2000:]
    return json.loads(local.stdout)


def test_a_worker_killed_mid_search_loses_its_trial_and_the_answer_stands(
    lab: Lab, digits_local: dict[str, Any], tmp_path: Path
) -> None:
    cluster = lab.cluster
    project = tmp_path / "digits"
    assert run_cli("new", DIGITS, "--out", str(project)).returncode == 0
    # A second worker, "b", that dies (SIGKILL to its whole tree) while it trains a trial.
    # As many CPUs as "a": of the round's 4 trials, Ray gives it its share.
    doomed = cluster.start_worker("b", 2, "doomed", python=lab.view)
    cluster.nodes({"cpus": [0, 2, 2]})
    search = cluster.client_popen(
        [str(TINYFORGE), "fit", str(project), "--engine", "ray", "--address", ADDRESS,
         *DIGITS_ARGS],
    )  # fmt: skip
    try:
        wait_for(
            lambda: _trials_under(doomed.pid) or search.poll() is not None,
            600,
            "a trial on worker b",
        )
        assert search.poll() is None, "the search ended before worker b took a trial"
        cluster.kill_worker("b")
        out, err = search.communicate(timeout=900)
    finally:
        if search.poll() is None:
            search.kill()
            search.wait()
        if "b" in cluster.workers:  # the next tests expect worker "a" alone
            cluster.kill_worker("b")
    assert search.returncode == 0, out[-2000:] + err[-3000:]
    result = json.loads((project / "fit" / "fit.json").read_text())
    retried = [t for t in result["trials"] if t.get("lost_attempts")]
    assert retried, result["trials"]
    for trial in retried:
        loss = trial["lost_attempts"][0]
        assert "died" in loss["reason"], loss
        assert any("doomed" in d["node"] for d in loss["dead_nodes"]), loss
        # Run again on the worker that is left, to the end.
        assert trial["ran_on"]["resources"] == ["worker_tag"] and trial.get("trained")
    assert result["counts"]["trained"] == 4 and result["counts"]["lost"] == 0
    # Trials are deterministic: losing a worker does not change what the seed finds.
    assert _same(result) == _same(digits_local) and result["chosen"] == digits_local["chosen"]
    assert cluster.leftovers(TRIAL_PROCESS) == []


def test_a_trial_whose_ray_worker_process_dies_runs_again_and_leaves_no_orphan(
    cluster: Cluster, digits_local: dict[str, Any], tmp_path: Path
) -> None:
    import psutil

    project = tmp_path / "digits"
    assert run_cli("new", DIGITS, "--out", str(project)).returncode == 0
    node = cluster.workers["a"]
    search = cluster.client_popen(
        [str(TINYFORGE), "fit", str(project), "--engine", "ray", "--address", ADDRESS,
         *DIGITS_ARGS],
    )  # fmt: skip
    try:
        running = wait_for(
            lambda: _trials_under(node.pid) or search.poll() is not None, 600, "a trial"
        )
        assert running is not True, "the search ended before a trial ran: " + _output(search)
        trial = psutil.Process(running[0])
        # The Ray worker process running the trial dies (as an OOM kill would); its node
        # lives on. Its training child is in a session of its own, so nothing but its
        # watch on its parent ends it.
        ray_worker = trial.parent()
        assert ray_worker is not None and ray_worker.pid != node.pid
        ray_worker.kill()
        wait_for(lambda: not trial.is_running() or trial.status() == "zombie", 120, "no orphan")
        out, err = search.communicate(timeout=900)
    finally:
        if search.poll() is None:
            search.kill()
            search.wait()
    assert search.returncode == 0, out[-2000:] + err[-3000:]
    result = json.loads((project / "fit" / "fit.json").read_text())
    retried = [t for t in result["trials"] if t.get("lost_attempts")]
    assert len(retried) == 1, result["trials"]
    loss = retried[0]["lost_attempts"][0]
    assert loss["error"] == "WorkerCrashedError" and "worker running it died" in loss["reason"]
    assert loss["dead_nodes"] == []  # its node lived on (worker "b" died in another search)
    assert retried[0].get("trained") and retried[0]["ran_on"]["resources"] == ["worker_tag"]
    assert result["counts"]["trained"] == 4 and result["counts"]["lost"] == 0
    assert _same(result) == _same(digits_local) and result["chosen"] == digits_local["chosen"]


def test_ctrl_c_cancels_the_remote_trials_and_leaves_the_cluster_idle(
    cluster: Cluster, tmp_path: Path
) -> None:
    project = tmp_path / "digits"
    assert run_cli("new", DIGITS, "--out", str(project)).returncode == 0
    worker = cluster.workers["a"]
    search = cluster.client_popen(
        [str(TINYFORGE), "fit", str(project), "--engine", "ray", "--address", ADDRESS,
         "--trials", "8", "--epochs", "20", "--seed", "1"],
    )  # fmt: skip
    try:
        wait_for(
            lambda: _trials_under(worker.pid) or search.poll() is not None,
            600,
            "trials on the worker",
        )
        assert search.poll() is None, "the search ended before a trial ran: " + _output(search)
        search.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        out, err = search.communicate(timeout=300)
    finally:
        if search.poll() is None:
            search.kill()
            search.wait()
    assert search.returncode == 130 and "cancelled" in err, out[-1500:] + err[-3000:]
    assert not (project / "fit" / "fit.json").exists()
    # The trials were cancelled, not left training: no trial process on the worker, and
    # every CPU of the cluster free again for the next job.
    wait_for(lambda: not _trials_under(worker.pid), 120, "the cancelled trials to end")
    idle = cluster.nodes({"cpus": [0, 2], "free": 2})
    assert idle["free_cpus"] == idle["total_cpus"] == 2
    assert worker.poll() is None  # the worker itself lives on


# The editor's cancel: the language server's long_job sets the search's cancel event (what
# `tinyforge.fit` runs under progress). The same, as a client inside the namespace.
_EDITOR_CANCEL = """
import json, sys, threading, psutil
from tinyforge import jobs
from tinyforge.fit import FitOptions, fit, parse_size

project, address, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
cancel = threading.Event()
outcome = {}

def search():
    options = FitOptions(trials=8, epochs=20, seed=2, engine="ray", address=address,
                         budget_ram=parse_size("3KB"))
    try:
        fit(project, options, cancel=cancel)
        outcome["end"] = "finished"
    except jobs.Cancelled as exc:
        outcome["end"] = "cancelled: " + str(exc)

def training():
    kids = psutil.Process(worker).children(recursive=True)
    return any("tinyforge.fit.trial" in " ".join(k.cmdline()) for k in kids)

thread = threading.Thread(target=search)
thread.start()
while thread.is_alive() and not training():
    thread.join(0.25)
outcome["trial_seen"] = training()
cancel.set()  # the editor's Cancel button
thread.join(600)
outcome["returned"] = not thread.is_alive()
print(json.dumps(outcome))
"""


def test_the_editors_cancel_stops_the_remote_trials_too(cluster: Cluster, tmp_path: Path) -> None:
    project = tmp_path / "digits"
    assert run_cli("new", DIGITS, "--out", str(project)).returncode == 0
    worker = cluster.workers["a"]
    run = cluster.client(
        [str(Path(TINYFORGE).parent / "python"), "-c", _EDITOR_CANCEL, str(project), ADDRESS,
         str(worker.pid)],
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["trial_seen"] and outcome["returned"], outcome
    assert outcome["end"].startswith("cancelled"), outcome
    wait_for(lambda: not _trials_under(worker.pid), 120, "the cancelled trials to end")
    idle = cluster.nodes({"cpus": [0, 2], "free": 2})
    assert idle["free_cpus"] == idle["total_cpus"] == 2


@pytest.fixture(scope="module")
def second_cluster() -> Iterator[Cluster]:
    """Another namespace and head, for workers that must be the only ones."""
    c = Cluster()
    try:
        c.open_namespace()
        c.generate_token()
        c.start_head()
        yield c
    finally:
        c.stop()
        c.cleanup()


def test_a_worker_without_a_dependency_is_named_in_one_sentence(
    second_cluster: Cluster, tmp_path: Path
) -> None:
    lacking = python_view(tmp_path / "py", (*NO_TINYFORGE, "tflite_micro"))
    second_cluster.start_worker("lacking", 1, "lacking", python=lacking)
    second_cluster.nodes({"cpus": [0, 1]})
    project = tmp_path / "digits"
    assert run_cli("new", DIGITS, "--out", str(project)).returncode == 0
    code, _, out = _fit(second_cluster, project, *DIGITS_ARGS)
    second_cluster.stop_worker("lacking")
    assert code == 2, out
    assert "Traceback" not in out and out.count("error:") == 1, out
    # One sentence (the terminal may wrap it): the node, the package, the install line.
    error = " ".join(out[out.index("error:") :].split())
    assert error.startswith("error: The Ray cluster's Python on node ") and len(error) < 400
    assert "lacks tflite-micro" in error and error.endswith("pip install 'tinyforge[ray]'.")


def test_when_the_last_worker_dies_the_search_ends_and_says_what_was_lost(
    second_cluster: Cluster, tmp_path: Path
) -> None:
    view = python_view(tmp_path / "py", NO_TINYFORGE)
    only = second_cluster.start_worker("only", 2, "only", python=view)
    second_cluster.nodes({"cpus": [0, 2]})
    project = tmp_path / "digits"
    assert run_cli("new", DIGITS, "--out", str(project)).returncode == 0
    search = second_cluster.client_popen(
        [str(TINYFORGE), "fit", str(project), "--engine", "ray", "--address", ADDRESS,
         *DIGITS_ARGS, "--json"],
    )  # fmt: skip
    try:
        wait_for(lambda: _trials_under(only.pid), 600, "a trial on the only worker")
        second_cluster.kill_worker("only")
        out, err = search.communicate(timeout=900)
    finally:
        if search.poll() is None:
            search.kill()
            search.wait()
    # Nothing trained to the end: "no candidate fits" (3), with the losses on record.
    assert search.returncode in (0, 3), out[-2000:] + err[-3000:]
    result = json.loads((project / "fit" / "fit.json").read_text())
    # --json's stdout is the JSON alone, though Ray's driver announced the dead node.
    assert json.loads(out)["counts"] == result["counts"]
    lost = [t for t in result["trials"] if t["status"] == "lost"]
    assert lost and result["counts"]["lost"] == len(lost)
    for trial in lost:
        assert not trial.get("trained") and trial["reasons"][0].startswith("lost: ")
        assert "no node with a CPU is left" in trial["reasons"][0], trial
    assert any("stopped" in n and "no node with a CPU" in n for n in result["notes"])
    assert any("lost with their Ray node" in n for n in result["notes"])


def test_stopping_the_clusters_leaves_no_process(cluster: Cluster, second_cluster: Cluster) -> None:
    for c in (cluster, second_cluster):
        c.stop()
        assert c.head is None and not c.workers
        wait_for(lambda c=c: not c.leftovers(), 60, "every process of the cluster to end")
        assert c.leftovers() == []
        assert c.holder is None  # the namespace's own process too
