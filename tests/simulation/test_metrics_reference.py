"""compute_metrics' vectorised fairness against a plain-Python reference on random runs."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from rechenwerk.simulation.metrics import (
    JobOutcome,
    Timeline,
    _window_edges,
    compute_metrics,
    jain_index,
)


def overlap(a: float, b: float, lo: float, hi: float) -> float:
    return max(0.0, min(b, hi) - max(a, lo))


def water_fill(delivered: float, demand: dict[str, float], w: dict[str, float]) -> dict[str, float]:
    out = dict.fromkeys(demand, 0.0)
    active = {p for p, d in demand.items() if d > 0}
    remaining = delivered
    while active and remaining > 0:
        lam = remaining / sum(w[p] for p in active)
        capped = {p for p in active if demand[p] <= lam * w[p]}
        if not capped:
            for p in active:
                out[p] = lam * w[p]
            break
        for p in capped:
            out[p] = demand[p]
            remaining -= demand[p]
        active -= capped
    return out


def reference(outcomes: list[JobOutcome], window: float) -> tuple[float, dict[str, float]]:
    ws = min(o.submit_time for o in outcomes)
    we = max(o.end_time for o in outcomes)
    edges = _window_edges(ws, we, window).tolist()
    projects = sorted({o.project for o in outcomes})
    weights = dict.fromkeys(projects, 1.0)
    rec_tot = dict.fromkeys(projects, 0.0)
    ent_tot = dict.fromkeys(projects, 0.0)
    for lo, hi in itertools.pairwise(edges):
        rec = dict.fromkeys(projects, 0.0)
        dem = dict.fromkeys(projects, 0.0)
        for o in outcomes:
            run = o.end_time - o.first_start_time
            held = o.gpus * o.duration_s + o.lost_gpu_s
            rate = held / run if run > 0 else 0.0
            cap = min(1.0, o.duration_s / window)
            r = rate * overlap(o.first_start_time, o.end_time, lo, hi)
            rec[o.project] += r
            dem[o.project] += (
                r
                + o.gpus * cap * overlap(o.submit_time, o.first_start_time, lo, hi)
                + max(o.gpus - rate, 0.0) * cap * overlap(o.first_start_time, o.end_time, lo, hi)
            )
        ent = water_fill(sum(rec.values()), dem, weights)
        for p in projects:
            rec_tot[p] += rec[p]
            ent_tot[p] += ent[p]
    top = max(ent_tot.values())
    ratios = {p: rec_tot[p] / ent_tot[p] for p in projects if ent_tot[p] > 1e-9 * max(1.0, top)}
    return jain_index(list(ratios.values())), {p: ent_tot[p] / 3600 for p in projects}


@st.composite
def outcomes(draw: st.DrawFn) -> list[JobOutcome]:
    n = draw(st.integers(1, 12))
    out = []
    for i in range(n):
        submit = draw(st.integers(0, 500))
        wait = draw(st.integers(0, 300))
        dur = draw(st.integers(0, 400))
        extra = draw(st.integers(0, 200))  # requeue time after the first start
        lost = draw(st.integers(0, 100)) if extra else 0
        out.append(
            JobOutcome(
                job_id=f"j{i}",
                project=draw(st.sampled_from(["a", "b", "c"])),
                gpus=draw(st.integers(1, 4)),
                submit_time=float(submit),
                first_start_time=float(submit + wait),
                end_time=float(submit + wait + dur + extra),
                duration_s=float(dur),
                preemptions=1 if extra else 0,
                lost_gpu_s=float(lost),
            )
        )
    return out


@settings(max_examples=150, deadline=None)
@given(outs=outcomes(), window=st.sampled_from([50.0, 100.0, 333.0, 5000.0]))
def test_fairness_matches_reference(outs: list[JobOutcome], window: float) -> None:
    tl = Timeline(times=[], busy_gpus=[], queue_len=[], total_gpus=8)
    m = compute_metrics(outs, tl, fairness_window_s=window)
    jain, entitled = reference(outs, window)
    assert abs(m.jain_fairness - jain) < 1e-6
    for p in m.per_project:
        assert abs(p.entitled_gpu_hours - entitled[p.project]) < 1e-6 * max(
            1.0, entitled[p.project]
        )
