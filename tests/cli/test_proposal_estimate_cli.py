"""``rechenwerk proposal create/edit --estimate FILE | --no-estimate`` and the estimate in
``proposal show``, against a real uvicorn server (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

from test_proposal_edit_cli import tokens  # noqa: F401  (fixture)

from live_server import run_cli as run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "estimate-70b.yaml"


def test_estimate_through_the_cli(live_server: str, tokens: dict[str, str],  # noqa: F811
                                  tmp_path: Path) -> None:
    pi = tokens["pi"]
    small = tmp_path / "small.json"
    small.write_text(json.dumps({"params": 1e9, "tokens": 2e10, "gpu": "A100-80GB",
                                 "gpus": 8}))
    p = run(live_server, tmp_path, pi, "proposal", "create", "--call", "inno", "--project",
            "alpha", "--title", "LLM", "--gpu-type", "A100-80GB", "--gpu-hours", "500",
            "--estimate", str(small), "--json")
    est = p["estimate"]
    assert est["inputs"] == {"params": 1e9, "tokens": 2e10, "gpu": "A100-80GB", "gpus": 8}
    assert p["requested_vs_estimate"] == round(500 / est["gpu_hours"], 3)
    pid = str(p["id"])

    shown = run(live_server, tmp_path, pi, "proposal", "show", pid).stdout
    assert "training-compute estimate" in shown and "8 x A100-80GB" in shown
    assert f"{est['gpu_hours']:,.1f}" in shown
    assert "requested / estimate" in shown and f"{p['requested_vs_estimate']:.2f}" in shown

    # The documented example (YAML, 70B on H100) needs the proposal on H100 as well.
    mismatch = run(live_server, tmp_path, pi, "proposal", "edit", pid, "--estimate",
                   str(EXAMPLE), code=2)
    assert "estimate.gpu" in mismatch.stderr and "H100-SXM" in mismatch.stderr
    assert "Traceback" not in mismatch.output and len(mismatch.stderr.strip().splitlines()) <= 2
    # (the call's maximum is 1,000 GPU-hours: the ratio shows how far off the request is)
    edited = run(live_server, tmp_path, pi, "proposal", "edit", pid, "--gpu-type", "H100",
                 "--estimate", str(EXAMPLE), "--json")
    assert edited["estimate"]["inputs"]["params"] == 70e9
    assert edited["estimate"]["inputs"]["gpu"] == "H100-SXM"
    assert edited["estimate"]["request_check"] == "under"
    shown = run(live_server, tmp_path, pi, "proposal", "show", pid).stdout
    assert "request under half the estimate" in shown

    bad = tmp_path / "bad.yaml"
    bad.write_text("params: 7e9\ngpu: A100-80GB\ngpus: [1\n")
    r = run(live_server, tmp_path, pi, "proposal", "edit", pid, "--estimate", str(bad), code=2)
    assert "not valid YAML/JSON" in r.stderr
    bad.write_text("params: 7e9\ngpu: H100\ngpus: 0\n")
    r = run(live_server, tmp_path, pi, "proposal", "edit", pid, "--estimate", str(bad), code=2)
    assert "estimate.gpus" in r.stderr
    r = run(live_server, tmp_path, pi, "proposal", "edit", pid, "--estimate",
            str(tmp_path / "missing.yaml"), code=2)
    assert "does not exist" in r.stderr
    r = run(live_server, tmp_path, pi, "proposal", "edit", pid, "--estimate", str(small),
            "--no-estimate", code=2)
    assert "not both" in r.stderr

    removed = run(live_server, tmp_path, pi, "proposal", "edit", pid, "--no-estimate", "--json")
    assert removed["estimate"] is None and removed["requested_vs_estimate"] is None
    assert "training-compute estimate" not in run(live_server, tmp_path, pi, "proposal", "show",
                                                  pid).stdout
    run(live_server, tmp_path, pi, "proposal", "submit", pid)
    late = run(live_server, tmp_path, pi, "proposal", "edit", pid, "--estimate", str(small),
               code=5)
    assert "only drafts can be edited" in late.stderr
