"""`rechenwerk trace import --sacct` on what each dev cluster's sacct prints now (read-only:
only `sacct`): the `--json` output's data format is detected as the one of the cluster's
release, and it gives the same jobs as `--parsable2` of the same query. Whatever the
accounting holds (empty after a reset, or the jobs of earlier tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from slurm_helpers import SlurmCluster

from rechenwerk.execution.slurm import versions
from rechenwerk.execution.slurm.sacct_trace import read_sacct_json
from rechenwerk.simulation.traces.base import TraceFormatError
from rechenwerk.simulation.traces.history import ImportSummary
from rechenwerk.simulation.traces.sacct import read_sacct_parsable

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]
FIELDS = "JobID,Account,User,Submit,Start,End,ElapsedRaw,TimelimitRaw,AllocTRES,QOS,State"
RANGE = ("-a", "-X", "-S", "2026-01-01", "-E", "2026-12-01")  # a closed range: stable


def test_live_sacct_json_and_parsable2_agree(slurm_cluster: SlurmCluster,
                                             tmp_path: Path) -> None:
    version = slurm_cluster.run("scontrol", "version")
    assert version.returncode == 0, version.stderr
    release = versions.parse_release(version.stdout)
    flag = "--json"
    if release not in versions.RELEASES:
        # Newer than Rechenwerk knows (26.05 prints v0.0.45): its own format is refused
        # with the way out, and that way (an older format it still prints) is read.
        own = slurm_cluster.run("env", "TZ=UTC", "sacct", *RANGE, "--json")
        (tmp_path / "own.json").write_text(own.stdout)
        with pytest.raises(TraceFormatError, match=r"sacct --json=v0\.0\.42"):
            read_sacct_json(tmp_path / "own.json", ImportSummary())
        flag = "--json=v0.0.42"
    expected = flag.partition("=")[2] or versions.format_for_release(release).VERSION
    as_json = slurm_cluster.run("env", "TZ=UTC", "sacct", *RANGE, flag)
    as_text = slurm_cluster.run("env", "TZ=UTC", "sacct", *RANGE, "-P", f"--format={FIELDS}")
    assert as_json.returncode == 0 and as_text.returncode == 0, as_json.stderr + as_text.stderr
    (tmp_path / "s.json").write_text(as_json.stdout)
    (tmp_path / "s.txt").write_text(as_text.stdout)
    from_json, found = read_sacct_json(tmp_path / "s.json", ImportSummary())
    assert found == expected
    from_text = read_sacct_parsable(tmp_path / "s.txt", ImportSummary())

    def key(j: object) -> tuple[object, ...]:
        return tuple(getattr(j, f) for f in ("job_id", "submit_epoch", "duration_s", "gpus",
                                             "project", "walltime_s", "gpu_type", "user"))

    assert sorted(map(key, from_json)) == sorted(map(key, from_text))
