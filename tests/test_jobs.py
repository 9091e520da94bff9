"""reproduce --jobs: parallel workers and concurrent commands share the run cache safely."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oicsr_lab.locks import file_lock

# two regularisers, one ratio, no pipeline/Table 1: the smallest reproduce that trains and sweeps
SMALL = ["--preset", "ci", "--regs", "l2,oicsr_gl", "--ratios", "0.3", "--pipeline-regs", "", "--no-table1",
         "--finetune-epochs", "0", "--no-progress", "--device", "cpu"]


def _reproduce(out: Path, data_dir: Path, *extra: str, wait: bool = True):
    cmd = [sys.executable, "-m", "oicsr_lab", "reproduce", *SMALL, "--out", str(out), "--data-dir", str(data_dir),
           *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OICSR_LAB_PROGRESS": "0"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out_, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return err


def _results(root: Path) -> tuple[dict, list]:
    summary = json.loads((root / "summary.json").read_text())
    accs = {reg: r["test_acc"] for reg, r in summary["runs"]["0"].items()}
    with open(root / "sweep.csv") as f:
        rows = [{k: v for k, v in r.items()} for r in csv.DictReader(f)]
    return accs, rows


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, data_dir: Path, sample_data) -> tuple[dict, list]:
    """The reference: one process, one job, one thread."""
    root = tmp_path_factory.mktemp("seq")
    _reproduce(root, data_dir, "--jobs", "1", "--threads", "1")
    return _results(root)


def _trained(log: str) -> list[str]:
    """Training runs this process computed itself (not cache hits)."""
    return [line for line in log.splitlines() if "from scratch" in line or "from epoch" in line]


def test_two_concurrent_reproduce_train_each_run_once(tmp_path: Path, data_dir: Path, sequential) -> None:
    a = _reproduce(tmp_path, data_dir, "--jobs", "1", "--threads", "1", wait=False)
    b = _reproduce(tmp_path, data_dir, "--jobs", "1", "--threads", "1", wait=False)
    logs = []
    for p in (a, b):
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        logs.append(err)
    trained = _trained(logs[0]) + _trained(logs[1])
    assert len(trained) == 2, trained  # l2 and oicsr_gl, each by exactly one of the two commands
    assert {line.split()[1] for line in trained} == {"l2", "oicsr_gl"}
    assert _results(tmp_path) == sequential
    assert not list(tmp_path.rglob("*.tmp"))


def test_jobs_2_matches_sequential(tmp_path: Path, data_dir: Path, sequential) -> None:
    err = _reproduce(tmp_path, data_dir, "--jobs", "2", "--threads", "2")
    assert "2 worker processes x 1 thread" in err
    assert _results(tmp_path) == sequential
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["jobs"] == 2 and summary["cache"] == {"hit": 0, "computed": 4}


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_sigkill_of_a_worker_then_rerun_completes(tmp_path: Path, data_dir: Path, sequential) -> None:
    """Kill a training worker mid-run: the command fails, nothing half-written is left, a rerun finishes the same."""
    proc = _reproduce(tmp_path, data_dir, "--jobs", "2", "--threads", "2", "--epochs", "2", wait=False)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("runs/*/checkpoint.pt")):  # a worker is between epochs of a run
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    workers = [c for c in _children(proc.pid)
               if any("spawn" in a for a in Path(f"/proc/{c}/cmdline").read_text().split("\0"))]
    assert workers
    for w in workers:
        os.kill(w, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert not list(tmp_path.rglob("*.tmp"))
    assert not (tmp_path / "summary.json").exists()
    _reproduce(tmp_path, data_dir, "--jobs", "2", "--threads", "2")
    assert _results(tmp_path) == sequential


def _hold(path: str, q) -> None:
    with file_lock(path):
        q.put("held")
        time.sleep(1.0)


def test_file_lock_is_exclusive_and_released_on_kill(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_hold, args=(str(tmp_path / "x.lock"), q))
    p.start()
    assert q.get(timeout=60) == "held"
    waited = []
    t = time.monotonic()
    with file_lock(tmp_path / "x.lock", on_wait=lambda: waited.append(1), poll_s=0.05):
        assert waited and time.monotonic() - t > 0.3  # had to wait for the other process
    p.join()
    p = ctx.Process(target=_hold, args=(str(tmp_path / "y.lock"), q))
    p.start()
    assert q.get(timeout=60) == "held"
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    with file_lock(tmp_path / "y.lock", poll_s=0.05):  # the kernel released the dead holder's lock
        pass


def test_auto_threads_counts_the_cores_idle_now_not_a_minute_ago(monkeypatch) -> None:
    """Right after other work the load average still says busy; the /proc/stat sample says what is busy now.
    Without /proc/stat the load average decides."""
    import oicsr_lab.train.threads as th

    monkeypatch.delenv("OICSR_LAB_THREADS", raising=False)
    monkeypatch.setattr(th.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(th.os, "getloadavg", lambda: (2.0, 2.0, 2.0))  # lagging: both cores were busy
    monkeypatch.setattr(th.time, "sleep", lambda s: None)

    def counters(*rows):
        it = iter(rows)
        return lambda: list(next(it))

    # user nice system idle iowait: 200 ticks over the interval, all idle -> 0 busy cores -> 2 threads
    monkeypatch.setattr(th, "_cpu_times", counters((100, 0, 0, 1000, 0), (100, 0, 0, 1200, 0)))
    assert th.auto_threads() == 2
    # one of two cores busy (100 of 200 ticks idle) -> 1 thread
    monkeypatch.setattr(th, "_cpu_times", counters((100, 0, 0, 1000, 0), (200, 0, 0, 1100, 0)))
    assert th.auto_threads() == 1

    def absent():
        raise OSError("no /proc/stat")

    monkeypatch.setattr(th, "_cpu_times", absent)
    assert th.busy_cores() is None and th.auto_threads() == 1  # the load average (2.0 of 2 cores) decides
    monkeypatch.setenv("OICSR_LAB_THREADS", "2")
    assert th.auto_threads() is None
