"""A real Ray cluster for the tests: a head and workers started with `ray start`, each its own
process tree, inside a network namespace of the test's own so that only loopback carries
traffic.

Why a namespace: outside one, Ray advertises the machine's network interface even with
`--node-ip-address=127.0.0.1`, and it probes an outside address to find its own IP. Inside,
the only interface is `lo`: every address the cluster uses is 127.0.0.1 and nothing can
leave the machine.

Token authentication is on, as a team would run it: `ray get-auth-token --generate` writes
the token under the cluster's HOME, and every process (head, workers, the `tinyforge fit`
client) finds it through RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH in its environment,
never on a command line.

A worker may stand for another machine: its Python is a view of this venv without
TinyForge (and without any packages named), so the code has to travel with the job, and
folders can be hidden from it by a private tmpfs mount, so the data has to travel too.
Everything is stopped by the process ids started here (never `ray stop`, which ends every
Ray process of the user on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

VENV = Path(sys.executable).parent.parent
RAY = VENV / "bin" / "ray"
PORT = 6379  # the namespace is new: no other GCS can hold the port
ADDRESS = f"127.0.0.1:{PORT}"

# Asks the cluster for its nodes, waiting (bounded) until `want` alive ones have a CPU count
# as given; prints them as JSON. Run inside the namespace like any other client.
_NODES_PROBE = """
import json, sys, time
import ray
want = json.loads(sys.argv[1])
ray.init(address=sys.argv[2], log_to_driver=False)
deadline = time.monotonic() + float(sys.argv[3])
while True:
    nodes = [n for n in ray.nodes() if n["Alive"]]
    cpus = sorted(n["Resources"].get("CPU", 0) for n in nodes)
    free = ray.available_resources().get("CPU", 0)
    if want is None or (cpus == sorted(want["cpus"]) and free >= want.get("free", 0)):
        break
    if time.monotonic() > deadline:
        break
    time.sleep(0.5)
print(json.dumps({"nodes": nodes, "free_cpus": free, "total_cpus": sum(cpus)}))
"""


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` until it is truthy; a bounded wait for a state, not a speed check."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.25)


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process and every descendant it has now."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)
    psutil.wait_procs(procs, timeout=10)


def processes_matching(*needles: str) -> list[str]:
    """Command lines of live processes that contain any of `needles`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            line = " ".join(proc.info["cmdline"] or [])
            if any(n in line for n in needles):
                found.append(f"{proc.pid}: {line[:200]}")
    return found


def python_view(root: Path, leave_out: Iterable[str]) -> Path:
    """A venv whose site-packages links to every package of this one except `leave_out`
    (prefixes of entry names): the Python of a worker machine set up without them.
    Returns the folder; `ray` is in its bin/ like in any venv."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120
    )
    source = Path(next((VENV / "lib").glob("python3*"))) / "site-packages"
    target = next((root / "lib").glob("python3*")) / "site-packages"
    skip = tuple(leave_out)
    for entry in source.iterdir():
        if entry.name.startswith(skip) or entry.name == "__pycache__":
            continue
        (target / entry.name).symlink_to(entry)
    script = root / "bin" / "ray"
    script.write_text(
        f"#!{root / 'bin' / 'python'}\n"
        "import sys\nfrom ray.scripts.scripts import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    return root


class Cluster:
    """A network namespace with a Ray head, workers added and killed at will, and a way to
    run clients in it."""

    def __init__(self) -> None:
        # Short: Ray's Unix sockets live under the temp dir and their paths are limited.
        self.root = Path(tempfile.mkdtemp(prefix="tfray-", dir="/tmp"))
        self.home = self.root / "home"
        self.home.mkdir()
        self.ray_tmp = self.root / "ray"
        self.holder: subprocess.Popen[bytes] | None = None
        self.head: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[Path] = []
        self.token_path = self.home / ".ray" / "auth_token"

    # -- the namespace ------------------------------------------------------------------

    def _enter(self) -> list[str]:
        assert self.holder is not None
        return ["nsenter", "-t", str(self.holder.pid), "-n", "--"]

    def open_namespace(self) -> None:
        # The holder keeps the namespace alive; it ends by itself if this process dies.
        self.holder = subprocess.Popen(
            [
                "unshare", "--net", "--", "sh", "-c",
                f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done",
            ]
        )  # fmt: skip
        ours = os.readlink("/proc/self/ns/net")
        wait_for(
            lambda: os.readlink(f"/proc/{self.holder.pid}/ns/net") != ours,  # type: ignore[union-attr]
            30,
            "the network namespace",
        )
        subprocess.run([*self._enter(), "ip", "link", "set", "lo", "up"], check=True, timeout=30)

    def addresses(self) -> str:
        return subprocess.run(
            [*self._enter(), "ip", "-o", "addr"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout

    # -- processes ----------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        """What every process of the cluster, and its clients, runs with."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RAY_", "PYTEST_")) and k not in ("HOME", "VIRTUAL_ENV")
        }
        env.update(
            HOME=str(self.home),  # ~/.ray of the cluster, not the user's
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_path),
            RAY_USAGE_STATS_ENABLED="0",
            COLUMNS="200",
            NO_COLOR="1",
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        for key, value in extra.items():
            if value:
                env[key] = value
            else:  # "" leaves the variable out, as for a user who never set it
                env.pop(key, None)
        return env

    def _log(self, name: str) -> Any:
        path = self.root / f"{name}.log"
        self.logs.append(path)
        return path.open("wb")

    def generate_token(self) -> None:
        """`ray get-auth-token --generate`, as a team does once: the token file for every
        machine of the cluster (here, the cluster's HOME)."""
        env = self.env()
        del env["RAY_AUTH_TOKEN_PATH"]  # the default place, where --generate writes it
        subprocess.run(
            [*self._enter(), str(RAY), "get-auth-token", "--generate"],
            env=env,
            capture_output=True,  # it prints the token: not for the test's log
            check=True,
            timeout=120,
        )
        self.token_path.chmod(0o600)

    def start_head(self) -> None:
        # No CPUs on the head, as a team keeps it for Ray's own services: trials go to workers.
        with self._log("head") as log:
            self.head = subprocess.Popen(
                [
                    *self._enter(), str(RAY), "start", "--head", f"--port={PORT}",
                    "--num-cpus=0", f"--temp-dir={self.ray_tmp}", "--include-dashboard=false",
                    "--disable-usage-stats", "--block",
                ],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )  # fmt: skip

    def start_worker(
        self,
        name: str,
        cpus: int,
        tag: str,
        python: Path | None = None,
        hide: Iterable[Path] = (),
    ) -> subprocess.Popen[bytes]:
        """`ray start --address … --resources '{"<tag>": 1}'` with `python`'s ray; `hide`
        folders are empty to it (a private mount namespace with a tmpfs over each)."""
        ray = (python / "bin" / "ray") if python else RAY
        command = [
            str(ray), "start", f"--address={ADDRESS}", f"--num-cpus={cpus}",
            f"--resources={json.dumps({tag: 1})}", "--block",
        ]  # fmt: skip
        hidden = [str(p) for p in hide]
        if hidden:
            mounts = " && ".join(
                f'mount -t tmpfs tinyforge-hidden "${i + 1}"' for i in range(len(hidden))
            )
            command = [
                "unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                f'{mounts} && shift {len(hidden)} && exec "$@"', "sh", *hidden, *command,
            ]  # fmt: skip
        with self._log(f"worker-{name}") as log:
            proc = subprocess.Popen(
                [*self._enter(), *command],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        self.workers[name] = proc
        return proc

    def nodes(self, want: dict[str, Any] | None = None, timeout: float = 180) -> dict[str, Any]:
        """The cluster's alive nodes as a client sees them; with `want` ({"cpus": [...],
        "free": n}), once they are so (bounded wait)."""
        run = self.client(
            [
                str(VENV / "bin" / "python"), "-c", _NODES_PROBE, json.dumps(want), ADDRESS,
                str(timeout),
            ],
            timeout=timeout + 120,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
        return json.loads(run.stdout.strip().splitlines()[-1])

    def client(
        self, command: list[str], timeout: float = 900, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._enter(), *command],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )

    def client_popen(self, command: list[str], **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self._enter(), *command],
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.root,
            # As from a terminal: a suite started in the background (`make test &`, some CI
            # runners) inherits an ignored SIGINT, and Python then never sees a Ctrl-C.
            preexec_fn=_default_sigint,
        )

    def kill_worker(self, name: str) -> None:
        """The worker's machine is gone: its whole process tree dies at once, no goodbye."""
        proc = self.workers.pop(name)
        kill_tree(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_worker(self, name: str) -> None:
        proc = self.workers.pop(name)
        _stop(proc)

    def stop(self) -> None:
        """Every process started here, by its id: workers, head, then the namespace."""
        for name in list(self.workers):
            self.stop_worker(name)
        if self.head is not None:
            _stop(self.head)
            self.head = None
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait(timeout=30)
            self.holder = None

    def leftovers(self, needle: str = "") -> list[str]:
        """Processes of this cluster still alive (whose command line has `needle`): every
        one of them (Ray's services, its workers whatever they renamed themselves to,
        trials and their children, clients) inherited the cluster's HOME."""
        found = []
        for proc in psutil.process_iter(["environ", "cmdline", "status"]):
            with contextlib.suppress(psutil.Error):
                if proc.info["status"] == psutil.STATUS_ZOMBIE:
                    continue
                line = " ".join(proc.info["cmdline"] or [])
                if (proc.info["environ"] or {}).get("HOME") == str(self.home) and needle in line:
                    found.append(f"{proc.pid}: {line[:200]}")
        return found

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-chars:]}"
            for p in self.logs
            if p.exists()
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to `ray start --block`: it stops the services it started (and waits for
    them). Whatever of its tree is still there after that is killed."""
    try:
        tree = [*psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.wait(timeout=30)
    _, alive = psutil.wait_procs(tree, timeout=30)
    for rest in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            rest.kill()
    psutil.wait_procs(alive, timeout=10)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
