#!/usr/bin/env python3
"""allreduce-check: is this allocation healthy, and how fast do its ranks all-reduce?

Every rank all-reduces (sum) float32 tensors of growing sizes; each result is checked
against the exact expected sum, and rank 0 prints a table like nccl-tests'
``all_reduce_perf``::

         size     count   time_us  algbw_GB/s  busbw_GB/s  check
         4 KiB      1024     120.3        0.03        0.03     ok

``algbw = bytes / time``; ``busbw = algbw * 2 (n - 1) / n`` for n ranks (the ring
all-reduce moves ``2 (n - 1) / n`` of the message over each link, so busbw is comparable
across rank counts and with the hardware's link bandwidth). The verdict line is
``allreduce-check: PASS ...`` or ``allreduce-check: FAIL ...``; the exit code is 0 or 1.
Run under ``torchrun`` (nccl on GPUs, gloo on CPU); a single process checks nothing but
itself.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

try:
    import torch
    import torch.distributed as dist
except ModuleNotFoundError as _exc:  # one line naming the extra, not a traceback per rank
    if _exc.name != "torch":
        raise
    sys.exit(f"allreduce-check: PyTorch is not installed for {sys.executable}: "
             "pip install 'rechenwerk[recipes]'")


def human(nbytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:g} {unit}"
    return f"{nbytes} B"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    ap = argparse.ArgumentParser(description="All-reduce bandwidth and correctness check.")
    ap.add_argument("--min-bytes", type=int, default=4 << 10)
    ap.add_argument("--max-bytes", type=int, default=None,
                    help="largest message (default: 256 MiB on GPUs, 16 MiB on CPU)")
    ap.add_argument("--factor", type=int, default=4, help="size step between rows")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations per size")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--min-busbw", type=float, default=0.0,
                    help="fail when the largest size's bus bandwidth (GB/s) is below this")
    ap.add_argument("--out", type=Path, default=None,
                    help="results JSON (default: runs/job-<id>/allreduce.json)")
    args = ap.parse_args()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if world > 1:
        dist.init_process_group(backend)
    max_bytes = args.max_bytes or ((256 << 20) if device.type == "cuda" else (16 << 20))
    iters = args.iters or (20 if device.type == "cuda" else 5)
    if args.min_bytes < 4 or max_bytes < args.min_bytes or args.factor < 2 or iters < 1:
        raise SystemExit("error: need 4 <= --min-bytes <= --max-bytes, --factor >= 2, "
                         "--iters >= 1")

    # Who is where: one line per rank (gathered), so a missing or slow node is visible.
    where = f"{socket.gethostname()}/{os.environ.get('RECHENWERK_NODE_NAME', '-')}/" \
            f"{device.type}:{local_rank}"
    names: list[str | None] = [None] * world
    if world > 1:
        dist.all_gather_object(names, where)
    else:
        names = [where]
    if rank == 0:
        print(f"allreduce-check: {world} ranks, backend={backend if world > 1 else 'none'}, "
              f"device={device.type}", flush=True)
        for r, name in enumerate(names):
            print(f"  rank {r}: {name}", flush=True)
        print(f"{'size':>12} {'count':>10} {'time_us':>10} {'algbw_GB/s':>11} "
              f"{'busbw_GB/s':>11}  check", flush=True)

    rows = []
    all_ok = True
    nbytes = args.min_bytes
    while nbytes <= max_bytes:
        count = nbytes // 4
        # Rank r contributes r + 1 at every element (+ the element index mod 7, so a
        # reordering or a partial reduction shows up): the sum is exact in float32.
        pattern = torch.arange(count, device=device, dtype=torch.float32) % 7
        expected = pattern * world + world * (world + 1) / 2
        buf = pattern + (rank + 1)
        for _ in range(args.warmup):
            if world > 1:
                dist.all_reduce(buf.clone())
        sync(device)
        if world > 1:
            dist.barrier()
        elapsed = 0.0
        ok = True
        for _ in range(iters):
            work = pattern + (rank + 1)
            sync(device)
            t0 = time.perf_counter()
            if world > 1:
                dist.all_reduce(work)
            sync(device)
            elapsed += time.perf_counter() - t0
            ok = ok and bool(torch.equal(work, expected))
        # The slowest rank's time is the collective's time; a wrong result anywhere fails.
        stats = torch.tensor([elapsed / iters, 0.0 if ok else 1.0], dtype=torch.float64,
                             device=device)
        if world > 1:
            dist.all_reduce(stats, op=dist.ReduceOp.MAX)
        seconds, bad = stats.tolist()
        algbw = nbytes / seconds / 1e9
        busbw = algbw * 2 * (world - 1) / world
        ok = bad == 0
        all_ok = all_ok and ok
        rows.append({"bytes": nbytes, "count": count, "time_us": seconds * 1e6,
                     "algbw_gbs": algbw, "busbw_gbs": busbw, "ok": ok})
        if rank == 0:
            print(f"{human(nbytes):>12} {count:>10} {seconds * 1e6:>10.1f} {algbw:>11.2f} "
                  f"{busbw:>11.2f}  {'ok' if ok else 'WRONG'}", flush=True)
        nbytes *= args.factor

    top = rows[-1]["busbw_gbs"] if rows else 0.0
    fast_enough = top >= args.min_busbw
    passed = all_ok and fast_enough
    if rank == 0:
        why = []
        if not all_ok:
            why.append("wrong all-reduce results")
        if not fast_enough:
            why.append(f"busbw {top:.2f} GB/s < --min-busbw {args.min_busbw:g}")
        verdict = "PASS" if passed else "FAIL"
        print(f"allreduce-check: {verdict} ranks={world} max_busbw_GBps={top:.2f}"
              + (f" ({'; '.join(why)})" if why else ""), flush=True)
        out = args.out or Path("runs") / f"job-{os.environ.get('RECHENWERK_JOB_ID', 'local')}" \
            / "allreduce.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"recipe": "allreduce-check", "passed": passed,
                                   "ranks": world, "backend": backend, "device": device.type,
                                   "ranks_where": names, "rows": rows}, indent=2) + "\n")
        print(f"results={out}", flush=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
