#!/usr/bin/env python3
"""gpt-pretrain: a compact decoder-only transformer trained on bytes, ready for a centre.

Single process (``python train_gpt.py``) or data-parallel under ``torchrun`` (DDP: nccl
on GPUs with bf16 autocast, gloo on CPU). Checkpoints every ``--ckpt-every`` steps, every
``RECHENWERK_CHECKPOINT_INTERVAL_S`` seconds and on SIGTERM (preemption, walltime), and
resumes from its last checkpoint at the same step and data position. Progress lines::

    step=120/300 loss=2.4107 lr=2.41e-03 tok/s=5321 mfu=cpu

The last line names the metrics JSON (``done ... metrics=PATH``). See README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

try:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP
except ModuleNotFoundError as _exc:  # one line naming the extra, not a traceback per rank
    if _exc.name != "torch":
        raise
    sys.exit(f"gpt-pretrain: PyTorch is not installed for {sys.executable}: "
             "pip install 'rechenwerk[recipes]'")

# Model and run sizes. "auto" picks tiny on CPU (a demo that finishes in about a minute)
# and small on GPUs (~11M parameters, a few minutes on one A100). Flags override a preset.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"layers": 2, "d_model": 64, "heads": 4, "seq_len": 64, "batch_size": 8,
             "steps": 300, "lr": 3e-3, "warmup": 20},
    "small": {"layers": 6, "d_model": 384, "heads": 6, "seq_len": 256, "batch_size": 32,
              "steps": 2000, "lr": 1e-3, "warmup": 100},
}
VOCAB = 256  # bytes


# --- data --------------------------------------------------------------------------------
def synthetic_corpus(size: int, seed: int = 1234) -> bytes:
    """A deterministic English-like corpus with learnable structure (grammar, agreement,
    small sums), so the loss visibly falls below the ~5.5 nats of uniform bytes."""
    rng = random.Random(seed)
    names = ["Ada", "Emmy", "Lise", "Alan", "Grace", "Konrad", "Marie", "Kurt", "Hedy", "Otto"]
    cities = ["Berlin", "Jena", "Bonn", "Kiel", "Ulm", "Graz", "Basel", "Lyon", "Turin"]
    gpus = ["A100", "H100", "L40S", "MI300X"]
    adjs = ["small", "large", "quiet", "busy", "shared", "new", "old", "fast"]
    nouns = [("node", "nodes"), ("model", "models"), ("queue", "queues"), ("job", "jobs"),
             ("cluster", "clusters"), ("network", "networks"), ("award", "awards")]
    verbs = [("waits for", "wait for"), ("feeds", "feed"), ("checks", "check"),
             ("needs", "need"), ("follows", "follow")]

    def sentence() -> str:
        kind = rng.randrange(5)
        if kind == 0:
            n = rng.choice([1, 2, 4, 8, 16, 32])
            return (f"{rng.choice(names)} in {rng.choice(cities)} trained a "
                    f"{rng.choice(adjs)} model on {n} {rng.choice(gpus)} "
                    f"GPU{'s' if n > 1 else ''} for {rng.randint(2, 48)} hours.")
        if kind == 1:
            a, b = rng.randint(0, 20), rng.randint(0, 20)
            return f"{a} plus {b} is {a + b}."
        if kind == 2:
            plural = rng.random() < 0.5
            noun, verb, obj = rng.choice(nouns), rng.choice(verbs), rng.choice(nouns)
            subject = noun[1] if plural else noun[0]
            return (f"The {rng.choice(adjs)} {subject} {verb[1] if plural else verb[0]} "
                    f"the {obj[rng.randrange(2)]}.")
        if kind == 3:
            n = rng.randint(2, 9)
            noun = rng.choice(nouns)
            return f"Every {noun[0]} in {rng.choice(cities)} has {n} {rng.choice(nouns)[1]}."
        return f"{rng.choice(names)} said that the {rng.choice(nouns)[0]} was {rng.choice(adjs)}."

    parts: list[str] = []
    total = 0
    while total < size:
        para = " ".join(sentence() for _ in range(rng.randint(3, 7))) + "\n\n"
        parts.append(para)
        total += len(para)
    return "".join(parts).encode("ascii")[:size]


class Batches:
    """Non-overlapping windows of the training split, shuffled per epoch. The data position
    is one number, ``cursor`` (global samples consumed so far): the batch of a step is a
    function of it, so a resumed run, even on another number of ranks, reads on exactly
    where the interrupted one stopped."""

    def __init__(self, data: torch.Tensor, seq_len: int, seed: int) -> None:
        self.data, self.seq_len, self.seed = data, seq_len, seed
        self.windows = (len(data) - 1) // seq_len
        if self.windows < 1:
            raise SystemExit(f"error: the corpus ({len(data)} bytes) is shorter than one "
                             f"sequence ({seq_len + 1} bytes)")
        self._perm: tuple[int, torch.Tensor] | None = None

    def _window(self, sample: int) -> int:
        epoch, index = divmod(sample, self.windows)
        if self._perm is None or self._perm[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.windows, generator=gen))
        return int(self._perm[1][index])

    def get(self, first: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        starts = [self._window(s) * self.seq_len for s in range(first, first + count)]
        rows = torch.stack([self.data[s: s + self.seq_len + 1] for s in starts]).long()
        return rows[:, :-1], rows[:, 1:]


# --- model -------------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model, bias=False)
        self.fc_out = nn.Linear(4 * d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        out: torch.Tensor = x + self.fc_out(F.gelu(self.fc(self.ln2(x))))
        return out


class GPT(nn.Module):
    def __init__(self, layers: int, d_model: int, heads: int, seq_len: int) -> None:
        super().__init__()
        if d_model % heads:
            raise SystemExit(f"error: --d-model {d_model} is not a multiple of --heads {heads}")
        self.tok = nn.Embedding(VOCAB, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, VOCAB, bias=False)
        self.head.weight = self.tok.weight  # tied input and output embeddings
        for name, p in self.named_parameters():
            if p.dim() == 2:
                # GPT-2 initialisation: residual projections scaled down with depth
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight",
                                                                      "fc_out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits: torch.Tensor = self.head(self.ln_f(x))
        return logits


def lr_at(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < args.warmup:
        return float(args.lr * (step + 1) / args.warmup)
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return float(args.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))))


# --- hardware ----------------------------------------------------------------------------
def peak_flops(device: torch.device, args: argparse.Namespace) -> tuple[str, float | None]:
    """The GPU's dense BF16 peak from Rechenwerk's hardware catalogue (``--peak-tflops``
    wins); None when unknown, so MFU is reported as n/a rather than guessed."""
    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    if args.peak_tflops:
        return name, float(args.peak_tflops) * 1e12
    try:
        from rechenwerk.recipes import catalogue_peak_flops

        found = catalogue_peak_flops(args.gpu_type or name)
    except Exception:  # rechenwerk missing on this Python: MFU is informative only
        return name, None
    return (found[0], found[1]) if found else (name, None)


# --- checkpoints -------------------------------------------------------------------------
def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a kill mid-write never leaves a torn checkpoint


def sweep_task() -> int | None:
    """This run's index in a job array (Rechenwerk's or Slurm's variable); None: none."""
    for name in ("RECHENWERK_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_ID"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description="Pre-train a small byte-level GPT.")
    ap.add_argument("--preset", choices=["auto", *PRESETS], default="auto")
    for flag, typ in (("layers", int), ("d-model", int), ("heads", int), ("seq-len", int),
                      ("batch-size", int), ("steps", int), ("lr", float), ("warmup", int)):
        ap.add_argument(f"--{flag}", type=typ, default=None, help="overrides the preset")
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus", type=Path, default=None,
                    help="a text file to train on (default: the built-in synthetic corpus)")
    ap.add_argument("--corpus-bytes", type=int, default=256 * 1024)
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="checkpoint and metrics directory (default: runs/<job id>)")
    ap.add_argument("--ckpt-every", type=int, default=100, help="checkpoint every N steps")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--cpu-threads", type=int, default=1,
                    help="threads per rank on CPU (small models run fastest on one)")
    ap.add_argument("--gpu-type", default=None, help="catalogue name for MFU (default: detect)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="GPU peak for MFU")
    ap.add_argument("--lr-list", default=None,
                    help="a sweep: comma-separated learning rates; the job array's task "
                    "index (RECHENWERK_ARRAY_TASK_ID, or SLURM_ARRAY_TASK_ID) picks "
                    "lr-list[index mod its length] (overrides --lr) and seed + index div "
                    "its length")
    args = ap.parse_args()
    task = sweep_task()
    if args.lr_list is not None:
        try:
            lrs = [float(x) for x in args.lr_list.split(",") if x.strip()]
        except ValueError:
            raise SystemExit(f"error: --lr-list {args.lr_list!r} is not a comma-separated "
                             "list of numbers") from None
        if not lrs or any(not (x > 0) for x in lrs):
            raise SystemExit("error: --lr-list needs at least one positive learning rate")
        args.lr = lrs[(task or 0) % len(lrs)]
        # tasks beyond the list repeat it with other seeds: 100 tasks over 10 rates are
        # 10 seed replicates of each
        args.seed += (task or 0) // len(lrs)

    # --- processes and devices ---
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
        torch.set_num_threads(max(1, args.cpu_threads))
    if world > 1:
        dist.init_process_group(backend)
    main_rank = rank == 0

    def log(msg: str) -> None:
        if main_rank:
            print(msg, flush=True)

    preset = args.preset if args.preset != "auto" else ("small" if device.type == "cuda"
                                                          else "tiny")
    for key, value in PRESETS[preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("layers", "d_model", "heads", "seq_len", "batch_size", "steps", "warmup",
                "ckpt_every", "log_every", "cpu_threads"):
        if getattr(args, key) < 1:
            raise SystemExit(f"error: --{key.replace('_', '-')} must be at least 1")
    job = os.environ.get("RECHENWERK_JOB_ID", "local")
    out_dir = args.out_dir or Path("runs") / f"job-{job}"
    ckpt_path = out_dir / "checkpoint.pt"
    interval_s = float(os.environ.get("RECHENWERK_CHECKPOINT_INTERVAL_S") or 0)

    stop: dict[str, int] = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum  # acted on at the next step boundary, by every rank

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # --- data, model, optimiser ---
    text = args.corpus.read_bytes() if args.corpus else synthetic_corpus(args.corpus_bytes)
    data = torch.frombuffer(bytearray(text), dtype=torch.uint8)
    split = int(len(data) * 0.95)
    train, val = Batches(data[:split], args.seq_len, args.seed), data[split:]
    torch.manual_seed(args.seed)  # same initial weights on every rank
    model = GPT(args.layers, args.d_model, args.heads, args.seq_len).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    config = {k: getattr(args, k) for k in ("layers", "d_model", "heads", "seq_len")}

    step, cursor, first_loss, resumed_from = 0, 0, None, None
    loss_value = float("nan")
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt["config"] != config:
            raise SystemExit(f"error: {ckpt_path} holds a model {ckpt['config']}, not {config};"
                             " use another --out-dir")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, cursor, first_loss = ckpt["step"], ckpt["cursor"], ckpt.get("first_loss")
        loss_value = ckpt.get("last_loss", loss_value)  # for a run that was already done
        resumed_from = step
        log(f"resumed from {ckpt_path} at step={step} cursor={cursor}")
    ddp: nn.Module = DDP(model) if world > 1 else model
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    hw_name, peak = peak_flops(device, args)
    log(f"gpt-pretrain: preset={preset} params={n_params} layers={args.layers} "
        f"d_model={args.d_model} seq_len={args.seq_len} batch={args.batch_size}x{world} "
        f"world={world} backend={backend if world > 1 else 'none'} device={device.type} "
        f"hw={hw_name} peak_tflops={peak / 1e12 if peak else 'n/a'} bf16={use_bf16} "
        f"corpus_bytes={len(text)} out={out_dir} lr={args.lr:g}"
        + (f" array_task={task}" if task is not None else ""))

    saved = {"step": step}

    def checkpoint(reason: str) -> None:
        saved["step"] = step
        if main_rank:
            save_checkpoint(ckpt_path, {"model": model.state_dict(),
                                        "optimizer": opt.state_dict(), "step": step,
                                        "cursor": cursor, "config": config,
                                        "first_loss": first_loss, "last_loss": loss_value})
            print(f"checkpoint step={step} reason={reason} path={ckpt_path}", flush=True)

    global_batch = args.batch_size * world
    tokens_per_step = global_batch * args.seq_len
    t_window, tokens_window = time.perf_counter(), 0
    t_start, steps_run, last_ckpt_t = time.perf_counter(), 0, time.monotonic()
    stopped_by = 0
    while step < args.steps:
        lr = lr_at(step, args)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = train.get(cursor + rank * args.batch_size, args.batch_size)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = ddp(x)
        loss = F.cross_entropy(logits.float().view(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        step, cursor = step + 1, cursor + global_batch
        steps_run += 1
        tokens_window += tokens_per_step
        # One small all-reduce per step: the mean loss, whether any rank was signalled,
        # and rank 0's clock-based checkpoint decision, so every rank acts on the same step.
        due = main_rank and interval_s > 0 and time.monotonic() - last_ckpt_t >= interval_s
        flags = torch.cat([loss.detach().float().view(1),
                           torch.tensor([float(stop["signal"] > 0), float(due)], device=device)])
        if world > 1:
            dist.all_reduce(flags)
        loss_sum, signalled, timer_due = flags.tolist()
        loss_value = loss_sum / world
        if first_loss is None:
            first_loss = loss_value
        if step % args.log_every == 0 or step == args.steps or signalled:
            elapsed = time.perf_counter() - t_window
            tok_s = tokens_window / max(elapsed, 1e-9)
            mfu = (f"{100 * 6 * n_params * tok_s / (peak * world):.1f}%" if peak
                   else ("cpu" if device.type == "cpu" else "n/a"))
            log(f"step={step}/{args.steps} loss={loss_value:.4f} lr={lr:.2e} "
                f"tok/s={tok_s:.0f} mfu={mfu}")
            t_window, tokens_window = time.perf_counter(), 0
        if signalled:
            stopped_by = stop["signal"] or signal.SIGTERM
            log(f"signal at step={step}: checkpointing and exiting")
            checkpoint("signal")
            break
        if step % args.ckpt_every == 0 or timer_due:
            checkpoint("interval" if step % args.ckpt_every == 0 else "timer")
            last_ckpt_t = time.monotonic()
    if not stopped_by and saved["step"] != step:
        checkpoint("final")
    train_s = time.perf_counter() - t_start

    # --- validation and metrics (rank 0; the model is the same on every rank) ---
    if main_rank and not stopped_by:
        model.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                             enabled=use_bf16):
            n = (len(val) - 1) // args.seq_len
            rows = val[: n * args.seq_len + 1].long()
            xs = rows[:-1].view(n, args.seq_len)[:64].to(device)
            ys = rows[1:].view(n, args.seq_len)[:64].to(device)
            val_loss = F.cross_entropy(model(xs).float().view(-1, VOCAB), ys.reshape(-1)).item()
        tok_s = steps_run * tokens_per_step / max(train_s, 1e-9)
        metrics = {
            "recipe": "gpt-pretrain", "steps": step, "final_loss": loss_value,
            "first_loss": first_loss, "val_loss": val_loss, "params": n_params,
            "tokens": cursor * args.seq_len, "tokens_per_s": tok_s, "world_size": world,
            "device": device.type, "hardware": hw_name,
            "mfu": 6 * n_params * tok_s / (peak * world) if peak else None,
            "resumed_from_step": resumed_from, "train_seconds_this_attempt": train_s,
            "job_id": os.environ.get("RECHENWERK_JOB_ID"),
            "attempt": os.environ.get("RECHENWERK_ATTEMPT"), "config": config,
            "lr": args.lr, "seed": args.seed, "array_task_id": task,
        }
        metrics_path = out_dir / "metrics.json"
        metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"done steps={step} loss={loss_value:.4f} val_loss={val_loss:.4f} "
              f"metrics={metrics_path}", flush=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    # 128 + signal, like a shell: the run stopped early but its work is checkpointed.
    return 128 + stopped_by if stopped_by else 0


if __name__ == "__main__":
    sys.exit(main())
