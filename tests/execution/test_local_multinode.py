"""Multi-node jobs on the local executor with real processes: one process per allocated
node with its own GPUs and rank, one shared rendezvous port, gang semantics like
``srun --kill-on-bad-exit``, labelled logs, and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rechenwerk.execution.base import (
    BackendJobState,
    BackendJobStatus,
    GpuSlice,
    LaunchRequest,
)
from rechenwerk.execution.local import LocalExecutor
from waiting import BLOCK_TERM, DEADLINE_S, UNBLOCK_TERM, wait_for

PY = sys.executable
TWO_NODES = (GpuSlice("node01", (2, 3)), GpuSlice("node02", (0, 1)))


def request(tmp: Path, job_id: str, command: tuple[str, ...] | None, *, token: str = "",
            placement: tuple[GpuSlice, ...] = TWO_NODES, walltime_s: int = 30,
            script: str | None = None) -> LaunchRequest:
    per_node = len(placement[0].gpu_indices)
    return LaunchRequest(
        job_id=job_id, attempt=1, name=f"job-{job_id}", project="p1", user="alice",
        command=command, script=script, workdir=str(tmp),
        env={"RW_TEST_TOKEN": token or uuid.uuid4().hex},
        gpus=per_node * len(placement), nodes=len(placement), gpus_per_node=per_node,
        walltime_s=walltime_s, qos="normal", log_dir=str(tmp / "logs" / job_id / "1"),
        placement=placement,
    )


def wait_terminal(ex: LocalExecutor, handle: str, timeout: float = DEADLINE_S
                  ) -> BackendJobStatus:
    return wait_for(lambda: (lambda st: st if st.state not in (
        BackendJobState.PENDING, BackendJobState.RUNNING) else None)(ex.poll([handle])[handle]),
        f"{handle} to finish", timeout)


def procs_with_token(token: str) -> list[int]:
    """Live processes (node processes and their children) whose environment carries
    ``RW_TEST_TOKEN=token``: read from /proc, so nothing escapes the check."""
    needle = f"RW_TEST_TOKEN={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours
        if needle in env:  # a zombie's environ is empty: only live processes count
            found.append(int(entry))
    return found


def labelled(path: Path) -> dict[str, list[str]]:
    """The lines of a labelled log by node name (``node02: text``)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        node, sep, text = line.partition(": ")
        assert sep, f"unlabelled line {line!r}"
        out.setdefault(node, []).append(text)
    return out


@pytest.fixture
def ex(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(tmp_path / "data", cluster="2x8:A100-80GB", kill_grace_s=1.0)


ENV_KEYS = ("CUDA_VISIBLE_DEVICES", "RECHENWERK_NODE_RANK", "RECHENWERK_NUM_NODES",
            "RECHENWERK_NODE_NAME", "RECHENWERK_NODELIST", "RECHENWERK_GPUS_PER_NODE",
            "RECHENWERK_PLACEMENT", "RECHENWERK_GPUS", "MASTER_ADDR", "MASTER_PORT",
            "NODE_RANK", "NNODES")
PRINT_ENV = ("import json,os,sys; "
             f"print(json.dumps({{k: os.environ.get(k) for k in {ENV_KEYS!r}}})); "
             "print('line two'); print('to stderr', file=sys.stderr); "
             "sys.stdout.write('no newline at the end')")


def test_each_node_gets_its_own_gpus_rank_and_one_shared_port(
    ex: LocalExecutor, tmp_path: Path
) -> None:
    h = ex.submit(request(tmp_path, "1", (PY, "-c", PRINT_ENV)))
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.COMPLETED and st.exit_code == 0
    logs = tmp_path / "logs/1/1"
    out = labelled(logs / "stdout.log")
    assert sorted(out) == ["node01", "node02"]
    envs = {node: json.loads(lines[0]) for node, lines in out.items()}
    for node, lines in out.items():
        # whole lines stay whole, and a last line without newline is kept (and ended)
        assert lines[1:] == ["line two", "no newline at the end"], node
    assert envs["node01"]["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert envs["node02"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    for rank, node in enumerate(("node01", "node02")):
        env = envs[node]
        assert env["RECHENWERK_NODE_RANK"] == env["NODE_RANK"] == str(rank)
        assert env["RECHENWERK_NODE_NAME"] == node
        assert env["RECHENWERK_NUM_NODES"] == env["NNODES"] == "2"
        assert env["RECHENWERK_NODELIST"] == "node01,node02"
        assert env["RECHENWERK_GPUS_PER_NODE"] == "2"
        assert env["RECHENWERK_GPUS"] == "4"
        assert env["RECHENWERK_PLACEMENT"] == "node01:2,3;node02:0,1"
        assert env["MASTER_ADDR"] == "127.0.0.1"
    port = envs["node01"]["MASTER_PORT"]
    assert port == envs["node02"]["MASTER_PORT"] and 0 < int(port) < 65536
    started = json.loads((ex.run_dir(h) / "started.json").read_text())
    assert started["master_port"] == int(port)
    assert started["nodes"] == ["node01", "node02"] and len(set(started["pids"])) == 2
    assert sorted((logs / "stderr.log").read_text().splitlines()) == [
        "node01: to stderr", "node02: to stderr"]


def test_each_launch_gets_its_own_free_port(ex: LocalExecutor, tmp_path: Path) -> None:
    sleeper = (PY, "-c", "import time; time.sleep(600)")
    handles = [ex.submit(request(tmp_path, str(i), sleeper)) for i in (2, 3)]
    ports = []
    for h in handles:
        started = ex.run_dir(h) / "started.json"
        wait_for(started.exists, "the job to start")
        ports.append(json.loads(started.read_text())["master_port"])
    for h in handles:
        ex.cancel(h)
    for h in handles:
        assert wait_terminal(ex, h).state == BackendJobState.CANCELLED
    assert ports[0] != ports[1]


def test_single_node_job_is_rank_0_of_1_and_unlabelled(ex: LocalExecutor, tmp_path: Path) -> None:
    h = ex.submit(request(tmp_path, "4", (PY, "-c", PRINT_ENV),
                          placement=(GpuSlice("node02", (5,)),)))
    assert wait_terminal(ex, h).state == BackendJobState.COMPLETED
    lines = (tmp_path / "logs/4/1/stdout.log").read_text().splitlines()
    env = json.loads(lines[0])
    assert lines[1:] == ["line two", "no newline at the end"]
    assert (tmp_path / "logs/4/1/stderr.log").read_text() == "to stderr\n"
    assert env["CUDA_VISIBLE_DEVICES"] == "5"
    assert env["RECHENWERK_NODE_RANK"] == env["NODE_RANK"] == "0"
    assert env["RECHENWERK_NUM_NODES"] == env["NNODES"] == "1"
    assert env["RECHENWERK_NODE_NAME"] == env["RECHENWERK_NODELIST"] == "node02"
    assert env["RECHENWERK_GPUS_PER_NODE"] == "1"
    assert env["MASTER_ADDR"] == "127.0.0.1" and int(env["MASTER_PORT"]) > 0


def test_a_long_line_is_split_into_labelled_pieces(ex: LocalExecutor, tmp_path: Path) -> None:
    code = "import sys; sys.stdout.write('x' * 200000 + '\\nend\\n')"
    h = ex.submit(request(tmp_path, "5", (PY, "-c", code)))
    assert wait_terminal(ex, h).state == BackendJobState.COMPLETED
    out = labelled(tmp_path / "logs/5/1/stdout.log")
    for lines in out.values():
        assert lines[-1] == "end"
        assert "".join(lines[:-1]) == "x" * 200000 and len(lines) > 2


def test_a_failing_node_stops_the_others_and_gives_its_exit_code(
    ex: LocalExecutor, tmp_path: Path
) -> None:
    marker, ready = tmp_path / "rank0-got-term", tmp_path / "rank0-ready"
    # Rank 1 fails once rank 0 has its SIGTERM handler (not after a fixed second).
    code = ("import os,signal,sys,time\n"
            "if os.environ['NODE_RANK'] == '1':\n"
            f"    while not os.path.exists({str(ready)!r}): time.sleep(0.05)\n"
            "    print('rank 1 fails', flush=True); sys.exit(3)\n"
            f"def h(*a): open({str(marker)!r},'w').write('term'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, h)\n"
            "print('rank 0 waits', flush=True)\n"
            f"open({str(ready)!r}, 'w').close(); time.sleep(600)\n")
    token = uuid.uuid4().hex
    h = ex.submit(request(tmp_path, "6", (PY, "-c", code), token=token))
    st = wait_terminal(ex, h)  # long before rank 0's own 600 s: it was stopped
    assert st.state == BackendJobState.FAILED and st.exit_code == 3
    assert st.reason == ("exit code 3 on node02 (node rank 1); "
                         "the other node processes were stopped")
    assert marker.read_text() == "term"  # rank 0 got SIGTERM first, not SIGKILL
    out = labelled(tmp_path / "logs/6/1/stdout.log")
    assert out == {"node01": ["rank 0 waits"], "node02": ["rank 1 fails"]}
    assert procs_with_token(token) == []


def test_a_killed_node_stops_the_others(ex: LocalExecutor, tmp_path: Path) -> None:
    ready = tmp_path / "rank1-ignores-term"
    # Rank 0 dies once rank 1 ignores SIGTERM (not after a fixed half second).
    code = ("import os,signal,time\n"
            "if os.environ['NODE_RANK'] == '0':\n"
            f"    while not os.path.exists({str(ready)!r}): time.sleep(0.05)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"  # rank 1 needs the SIGKILL
            f"open({str(ready)!r}, 'w').close(); time.sleep(600)\n")
    token = uuid.uuid4().hex
    h = ex.submit(request(tmp_path, "7", (PY, "-c", code), token=token))
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.FAILED and st.exit_code == -signal.SIGKILL
    assert st.reason is not None
    assert st.reason.startswith("killed by signal SIGKILL on node01 (node rank 0)")
    assert procs_with_token(token) == []


GRANDCHILD = ("import os,subprocess,sys,time\n"
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              "print('up', flush=True)\n"
              "time.sleep(600)\n")


def test_cancel_stops_every_node_process_and_their_children(
    ex: LocalExecutor, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex
    h = ex.submit(request(tmp_path, "8", (PY, "-c", GRANDCHILD), token=token))
    log = tmp_path / "logs/8/1/stdout.log"
    wait_for(lambda: log.exists() and log.read_text().count("up") == 2, "both nodes up")
    # two node processes, each with a child: the /proc scan sees all four
    wait_for(lambda: len(procs_with_token(token)) == 4, "four processes")
    ex.cancel(h)
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.CANCELLED and st.reason == "cancelled"
    wait_for(lambda: procs_with_token(token) == [], "no process of the job left")


def test_walltime_sigkills_every_node_after_the_grace(ex: LocalExecutor, tmp_path: Path) -> None:
    code = ("import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            + UNBLOCK_TERM + "print('ready', flush=True)\ntime.sleep(600)\n")
    token = uuid.uuid4().hex
    h = ex.submit(request(tmp_path, "9", (*BLOCK_TERM, PY, "-c", code), token=token,
                          walltime_s=1))
    st = wait_terminal(ex, h)  # long before the job's own 600 s: it was killed
    assert st.state == BackendJobState.TIMEOUT and st.reason == "walltime of 1 s exceeded"
    assert st.exit_code == -signal.SIGKILL
    wait_for(lambda: procs_with_token(token) == [], "no process of the job left")


def test_preempt_sends_sigterm_to_every_node(ex: LocalExecutor, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    code = ("import os,signal,sys,time\n"
            f"path = {str(ckpt)!r} + '.' + os.environ['NODE_RANK']\n"
            "def h(*a): open(path,'w').write('saved'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, h)\n"
            "print('ready', flush=True)\ntime.sleep(600)\n")
    h = ex.submit(request(tmp_path, "10", (PY, "-c", code)))
    log = tmp_path / "logs/10/1/stdout.log"
    wait_for(lambda: log.exists() and log.read_text().count("ready") == 2, "both nodes ready")
    ex.preempt(h)
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.PREEMPTED and st.exit_code == 0
    assert [Path(f"{ckpt}.{r}").read_text() for r in (0, 1)] == ["saved", "saved"]


def test_killed_supervisor_leaves_no_node_process(ex: LocalExecutor, tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    h = ex.submit(request(tmp_path, "11", (PY, "-c", GRANDCHILD), token=token))
    wait_for(lambda: len(procs_with_token(token)) == 4, "four processes")
    os.kill(int((ex.run_dir(h) / "supervisor.pid").read_text()), signal.SIGKILL)
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.FAILED
    assert st.reason is not None and "supervisor" in st.reason
    wait_for(lambda: procs_with_token(token) == [], "no process of the job left")


def test_restarted_executor_finds_the_multi_node_job_and_never_runs_it_twice(
    tmp_path: Path
) -> None:
    data = tmp_path / "data"
    counter = tmp_path / "count"
    code = (f"import os,time; open({str(counter)!r}, 'a').write(os.environ['NODE_RANK']); "
            "time.sleep(0.5)")
    req = request(tmp_path, "12", (PY, "-c", code))
    before = datetime.now(UTC)
    first = LocalExecutor(data, kill_grace_s=1.0)
    h = first.submit(req)
    del first
    second = LocalExecutor(data, kill_grace_s=1.0)
    assert second.submit(req) == h  # a retried launch of the same attempt: no-op
    st = wait_terminal(second, h)
    after = datetime.now(UTC)
    assert st.state == BackendJobState.COMPLETED and st.exit_code == 0
    assert st.started_at is not None and st.ended_at is not None
    # Its real run: at least its sleep, within what the test saw (no fixed upper bound).
    assert (st.ended_at - st.started_at).total_seconds() >= 0.4
    assert before <= st.started_at <= st.ended_at <= after
    assert sorted(counter.read_text()) == ["0", "1"]  # once per node, not twice


TORCH_ALLREDUCE = """\
import os, torch, torch.distributed as dist
rank, world = int(os.environ["NODE_RANK"]), int(os.environ["NNODES"])
dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world)
t = torch.tensor([float(rank + 1), 10.0 * (rank + 1)])
dist.all_reduce(t)
print("sum", t.tolist(), "rank", dist.get_rank(), "of", dist.get_world_size(), flush=True)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_nodes_form_a_torch_gloo_process_group(ex: LocalExecutor, tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="torch is not installed in this venv "
                        "(pip install torch==2.13.0 for the CPU build)")
    script = tmp_path / "allreduce.py"
    script.write_text(TORCH_ALLREDUCE)
    h = ex.submit(request(tmp_path, "13", (PY, str(script)), walltime_s=120))
    st = wait_terminal(ex, h, timeout=150)
    err = (tmp_path / "logs/13/1/stderr.log").read_text()
    assert st.state == BackendJobState.COMPLETED, (st, err)
    out = labelled(tmp_path / "logs/13/1/stdout.log")
    assert out == {"node01": ["sum [3.0, 30.0] rank 0 of 2"],
                   "node02": ["sum [3.0, 30.0] rank 1 of 2"]}


TORCHRUN_SCRIPT = """\
#!/bin/sh
# the usual multi-node torchrun recipe, with the variables Slurm users also get
exec "{python}" -m torch.distributed.run --nnodes="$NNODES" --node-rank="$NODE_RANK" \\
    --nproc-per-node=1 --master-addr="$MASTER_ADDR" --master-port="$MASTER_PORT" \\
    "{train}"
"""
TORCHRUN_TRAIN = """\
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")  # RANK, WORLD_SIZE, MASTER_* come from torchrun
t = torch.ones(1) * (dist.get_rank() + 1)
dist.all_reduce(t)
print("rank", dist.get_rank(), "of", dist.get_world_size(), "sum", t.item(),
      "node", os.environ["RECHENWERK_NODE_NAME"], flush=True)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_torchrun_recipe_runs_unchanged(ex: LocalExecutor, tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="torch is not installed in this venv "
                        "(pip install torch==2.13.0 for the CPU build)")
    train = tmp_path / "train.py"
    train.write_text(TORCHRUN_TRAIN)
    script = TORCHRUN_SCRIPT.format(python=PY, train=train)
    h = ex.submit(request(tmp_path, "14", None, script=script, walltime_s=180))
    st = wait_terminal(ex, h, timeout=200)
    err = (tmp_path / "logs/14/1/stderr.log").read_text()
    assert st.state == BackendJobState.COMPLETED, (st, err)
    out = labelled(tmp_path / "logs/14/1/stdout.log")
    assert out == {"node01": ["rank 0 of 2 sum 3.0 node node01"],
                   "node02": ["rank 1 of 2 sum 3.0 node node02"]}
