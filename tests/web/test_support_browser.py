"""A support request in a real browser (Debian's chromium through Playwright) against a
real server over the migrated demo centre: a member opens it, an operator assigns,
answers and closes it (through the confirmation page), and each step's mail arrives at
a test SMTP server through the notifier's own round (queue, then deliver)."""

from __future__ import annotations

import re
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import login, shot

from smtp_capture import SmtpCapture, subject_of, text_of
from waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]


@dataclass
class SupportPortal:
    url: str
    smtp: SmtpCapture
    deliver: Any  # () -> None: one notifier round against the SMTP server


@pytest.fixture(scope="module")
def support_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupportPortal]:
    import uvicorn

    from rechenwerk.access.demo import load_demo
    from rechenwerk.app import create_app
    from rechenwerk.config import Settings
    from rechenwerk.notifications.senders import SmtpSender
    from rechenwerk.notifications.worker import Notifier
    from rechenwerk.store.migrate import upgrade
    from rechenwerk.store.session import make_engine, make_session_factory, session_scope

    tmp = tmp_path_factory.mktemp("support-portal")
    db_url = f"sqlite:///{tmp / 'rechenwerk.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        load_demo(session, now=datetime.now(UTC))
    # No scheduler loop, hence no notifier thread: the test runs the notifier's round
    # itself, with an SMTP sender, whenever it wants the mail delivered.
    app = create_app(
        Settings(
            data_dir=tmp / "var",
            database_url=db_url,
            scheduler_enabled=False,
            secret_key=secrets.token_hex(16),
        )
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="support-test-server", daemon=True)
    thread.start()
    wait_for(lambda: bool(server.started), "the support test server to start")
    with SmtpCapture() as smtp:
        notifier = Notifier(
            factory, SmtpSender(smtp.host, smtp.port, "support@centre.example", tls="off")
        )
        try:
            yield SupportPortal(f"http://127.0.0.1:{port}", smtp, notifier.run_once)
        finally:
            server.should_exit = True
            thread.join(timeout=15)
            engine.dispose()


@pytest.fixture
def page_for(browser: Any, support_portal: SupportPortal) -> Iterator[Any]:
    contexts: list[Any] = []

    def make(username: str) -> Any:
        ctx = browser.new_context(
            viewport={"width": 1280, "height": 900}, base_url=support_portal.url
        )
        ctx.set_default_timeout(60_000)  # a failure guard: a loaded machine is slow
        contexts.append(ctx)
        page = ctx.new_page()
        login(page, username)
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def _mail(portal: SupportPortal, to: str, subject: str) -> str:
    """Deliver the outbox, then the body of the mail to ``to`` with ``subject``."""
    portal.deliver()
    found = portal.smtp.wait_for(
        lambda m: m["To"] == to and subject_of(m) == subject, f"the mail {subject!r} to {to}"
    )
    return text_of(found)


def test_open_assign_answer_close_with_mail(page_for: Any, support_portal: SupportPortal) -> None:
    jonas = page_for("jonas")
    jonas.click("nav >> text=Support")
    jonas.click("[data-testid=new-request]")
    jonas.click("form[data-testid=support-form] button[type=submit]")  # empty: all errors
    for name in ("project", "kind", "subject", "body"):
        assert jonas.locator(f"[data-testid=error-{name}]").is_visible()
    assert jonas.get_attribute("#f-subject", "aria-invalid") == "true"
    shot(jonas, "support-01-form-errors")
    jonas.get_by_label("Project").select_option("nordlicht-llm")
    jonas.get_by_label("Kind of help").select_option("porting")
    jonas.get_by_label("Subject").fill("Checkpoints are slow on 16 nodes")
    jonas.get_by_label("Message").fill("Saving a 7B checkpoint takes 20 minutes.")
    jonas.click("form[data-testid=support-form] button[type=submit]")
    jonas.wait_for_url(re.compile(r".*/support/\d+$"))
    rid = int(jonas.url.rsplit("/", 1)[1])
    assert "the operators have been told" in jonas.locator(".flash").inner_text()
    assert (
        "open (waiting for an operator)"
        in jonas.locator("[data-testid=support-state]").inner_text()
    )
    subject = "Checkpoints are slow on 16 nodes"
    new = _mail(
        support_portal,
        "operator@demo.rechenwerk.example.eu",
        f"New support request {rid} (Porting and scaling): {subject}",
    )
    assert "Saving a 7B checkpoint takes 20 minutes." in new

    op = page_for("operator")
    op.goto("/support?state=open")
    op.click(f"[data-testid=support-row-{rid}] >> text={subject}")
    op.get_by_label("Operator").select_option("operator")
    op.click("form[data-testid=assign-form] button[type=submit]")
    assert "Assigned to operator." in op.locator(".flash").inner_text()
    assert op.locator("[data-testid=support-assignee]").inner_text() == "operator"
    op.get_by_label("Your answer").fill("Write checkpoints to /scratch, not $HOME.")
    op.click("form[data-testid=reply-form] button[type=submit]")
    assert (
        "answered (waiting for the requester)"
        in op.locator("[data-testid=support-state]").inner_text()
    )
    answer = _mail(
        support_portal,
        "jonas@demo.rechenwerk.example.eu",
        f"Answer to your support request {rid}: {subject}",
    )
    assert "Write checkpoints to /scratch" in answer

    op.click("[data-testid=close-link]")
    op.wait_for_url(re.compile(rf".*/support/{rid}/close$"))
    op.get_by_label("Closing comment (optional)").fill("Solved by using /scratch.")
    shot(op, "support-02-close-confirmation")
    op.click("[data-testid=confirm-close]")
    op.wait_for_url(re.compile(rf".*/support/{rid}$"))
    assert op.locator("h1 .badge").inner_text() == "closed"
    closed = _mail(
        support_portal,
        "jonas@demo.rechenwerk.example.eu",
        f"Support request {rid} closed: {subject}",
    )
    assert "Solved by using /scratch." in closed

    jonas.reload()
    assert jonas.locator("[data-testid=conversation] li").count() == 3
    assert jonas.locator("[data-testid=reopen]").is_visible()
    shot(jonas, "support-03-closed-conversation")
    op.goto("/ops/audit?entity=support_request")
    words = op.locator("[data-testid=audit-words]").all_inner_texts()
    assert any(w.startswith("closed a support request") for w in words)
    assert any(w.startswith("assigned a support request") for w in words)
    assert Path(shot(op, "support-04-audit")).exists()
