"""Unit tests (no Slurm needed) of the slurmdb write payloads of v0.0.40-v0.0.42 against
request and response bodies recorded from a real Slurm 24.11.5 slurmrestd
(tests/slurm/fixtures/slurm-24.11/rest/<format>/accounts-sync, made by
record_2411_accounts.py; see the fixtures' README)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rechenwerk.execution.slurm import v0_0_38, v0_0_39, v0_0_40, v0_0_41, v0_0_42

REC = Path(__file__).parent / "fixtures" / "slurm-24.11" / "rest"
FORMATS = [v0_0_40, v0_0_41, v0_0_42]
CLUSTER = "rechenwerk2411"


def recorded(fmt: ModuleType, name: str) -> dict[str, Any]:
    path = REC / fmt.VERSION / "accounts-sync" / f"{name}.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def acct(fmt: ModuleType) -> str:
    return f"rwrec{fmt.VERSION.replace('.', '')[1:]}"


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda m: m.VERSION)
def test_add_account_and_user_bodies_are_what_slurmrestd_took(fmt: ModuleType) -> None:
    add = recorded(fmt, "add-account")
    assert add["request"]["path"] == fmt.PATH_DB_ACCOUNTS_ASSOCIATION
    assert add["request"]["json"] == fmt.account_add_cond_payload(
        acct(fmt),
        description="rechenwerk:periods=7",
        organization="rechenwerk",
        cluster=CLUSTER,
        gpu_minutes=6000,
        qos=["high", "low", "normal"],
        default_qos="normal",
    )
    assert add["status"] == 200
    fmt.check_errors(add["body"], "adding an account")
    assert f"A = {acct(fmt)}" in add["body"]["added_accounts"]
    user = recorded(fmt, "add-user")
    assert user["request"]["path"] == fmt.PATH_DB_USERS_ASSOCIATION
    assert user["request"]["json"] == fmt.user_add_cond_payload("root", acct(fmt), cluster=CLUSTER)
    fmt.check_errors(user["body"], "adding a user")
    assert "U = root" in user["body"]["added_users"]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda m: m.VERSION)
def test_what_slurmdbd_lists_after_the_adds(fmt: ModuleType) -> None:
    assocs = recorded(fmt, "associations-added")["body"]
    accounts = recorded(fmt, "accounts")["body"]
    found = fmt.parse_accounts(accounts, assocs, {acct(fmt)})
    got = found[acct(fmt)]
    assert (got.gpu_minutes, got.users, got.description) == (
        6000,
        frozenset({"root"}),
        "rechenwerk:periods=7",
    )
    own = fmt.own_association(assocs, acct(fmt))
    assert own is not None
    assert (own["parent_account"], own["qos"], own["default"]["qos"]) == (
        "root",
        ["high", "low", "normal"],
        "normal",
    )
    assert fmt.own_association(assocs, "no-such-account") is None


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda m: m.VERSION)
def test_limit_change_keeps_other_tres_minutes(fmt: ModuleType) -> None:
    """The account had GrpTRESMins=cpu=1000,gres/gpu=6000 (cpu set by hand); the change
    to gres/gpu=7 sends both (slurmrestd drops a TRES the request leaves out)."""
    before = recorded(fmt, "associations-cpu-limit")["body"]
    change = recorded(fmt, "set-limit")
    assert change["request"]["path"] == fmt.PATH_DB_ASSOCIATIONS
    assert change["request"]["json"] == fmt.account_limit_payload(
        acct(fmt), cluster=CLUSTER, gpu_minutes=7, current=fmt.own_association(before, acct(fmt))
    )
    (sent,) = change["request"]["json"]["associations"]
    assert sent["max"]["tres"]["group"]["minutes"] == [
        {"type": "cpu", "name": "", "count": 1000},
        {"type": "gres", "name": "gpu", "count": 7},
    ]
    fmt.check_errors(change["body"], "changing a limit")
    after = recorded(fmt, "associations-limit-changed")["body"]
    assert fmt.parse_accounts({}, after, {acct(fmt)})[acct(fmt)].gpu_minutes == 7
    own = fmt.own_association(after, acct(fmt))
    assert own is not None
    assert {(t["type"], t["name"], t["count"]) for t in own["max"]["tres"]["group"]["minutes"]} == {
        ("cpu", "", 1000),
        ("gres", "gpu", 7),
    }
    assert own["qos"] == ["high", "low", "normal"]  # left out of the request, kept


def test_limit_payload_without_a_current_association() -> None:
    (a,) = v0_0_42.account_limit_payload("p", cluster="c", gpu_minutes=5, current=None)[
        "associations"
    ]
    assert a == {
        "account": "p",
        "user": "",
        "cluster": "c",
        "max": {"tres": {"group": {"minutes": [{"type": "gres", "name": "gpu", "count": 5}]}}},
    }


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda m: m.VERSION)
def test_remove_user_answer(fmt: ModuleType) -> None:
    gone = recorded(fmt, "remove-user")
    assert gone["request"]["params"] == {"account": acct(fmt), "user": "root", "cluster": CLUSTER}
    assert gone["request"]["path"] == fmt.PATH_DB_ASSOCIATION
    fmt.check_errors(gone["body"], "removing a user")
    (removed,) = gone["body"]["removed_associations"]
    assert f"A = {acct(fmt)}" in removed and "U = root" in removed


def test_the_v0_0_38_way_on_v0_0_42_adds_no_account_association() -> None:
    """Why v0.0.40+ use accounts_association: the account's own association as a record
    through POST associations is answered 200 without errors, and slurmdbd has none."""
    post = recorded(v0_0_42, "old-way-association")
    assert post["status"] == 200 and post["body"]["errors"] == []
    listed = recorded(v0_0_42, "old-way-associations")["body"]
    assert listed["associations"] == []
    assert v0_0_42.parse_accounts({}, listed, {"rwrecold"}) == {}


def test_older_formats_add_associations_as_records() -> None:
    for fmt in (v0_0_38, v0_0_39):
        assert fmt.PATH_DB_ACCOUNTS_ASSOCIATION is None
        assert fmt.PATH_DB_USERS_ASSOCIATION is None
        assert fmt.REST_LIMIT_CHANGE is False
    assert all(f.REST_LIMIT_CHANGE for f in FORMATS)
