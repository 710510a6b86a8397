"""``rechenwerk server``: serve the REST API and the portal with uvicorn on
``create_app()``. Background work (the scheduler loop) hooks into the app's lifespan.

``--workers N`` runs N server processes on one port (uvicorn's process manager); only one
of them runs the scheduler loop at a time (leadership through the database), and an API
token revoked in one process is refused by the others within
``rechenwerk.access.security.TOKEN_CACHE_TTL_S`` seconds; their metrics are summed
(prometheus_client's multiprocess mode, ``_prepare_metrics``)."""

from __future__ import annotations

import gc
import json
import logging
import logging.config
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from rechenwerk.cli.output import handle_errors

if TYPE_CHECKING:
    from fastapi import FastAPI

    from rechenwerk.config import Settings


def app_factory() -> FastAPI:
    """``create_app()`` followed by one collection and ``gc.freeze()``: the app's
    long-lived objects (routes, models, mappers, compiled caches' skeleton) move to the
    permanent generation, so the collections that requests trigger do not walk them."""
    from rechenwerk.app import create_app

    app = create_app()
    gc.collect()
    gc.freeze()
    return app


def write_server_address(data_dir: Path, host: str, port: int) -> Path:
    """``<data_dir>/server.json``: the URL this server serves on, for the CLI on this
    machine (cli/client.py default_url)."""
    from rechenwerk.cli.client import SERVER_ADDRESS_FILE, url_host
    from rechenwerk.execution.local_supervisor import write_atomic

    path = Path(data_dir) / SERVER_ADDRESS_FILE
    write_atomic(path, json.dumps({"url": f"http://{url_host(host)}:{port}",
                                   "pid": os.getpid()}))
    return path


def say(line: str) -> None:
    """A start-up line: as a log record when logging is JSON, else plain on stderr."""
    from rechenwerk.cli.output import err_console

    server_log = logging.getLogger("rechenwerk.server")
    if server_log.handlers or logging.getLogger("rechenwerk").handlers:
        level = logging.WARNING if line.startswith("warning:") else logging.INFO
        server_log.log(level, "%s", line)
    else:
        err_console.print(line, highlight=False)


def _check_production(settings: Settings, bind_host: str) -> None:
    """Production mode's refusals (production.py); the demo-data check needs the database,
    and is skipped with a note when it cannot be reached (``/readyz`` will say so)."""
    from sqlalchemy.exc import SQLAlchemyError

    from rechenwerk.production import check_production, production_reason
    from rechenwerk.store.session import make_engine, make_session_factory

    if production_reason(settings, bind_host) is None:
        return
    check_production(settings, bind_host, None)
    engine = make_engine(settings.effective_database_url)
    try:
        with make_session_factory(engine)() as session:
            check_production(settings, bind_host, session)
    except SQLAlchemyError as exc:
        say(f"note: demo-data check skipped, the database is unreachable: "
            f"{type(exc).__name__}")
    finally:
        engine.dispose()


def _check_local_cluster(value: str) -> None:
    """A bad ``RECHENWERK_LOCAL_CLUSTER`` is one line naming the variable, not a
    traceback from the app factory in uvicorn."""
    from rechenwerk.errors import InvalidInput
    from rechenwerk.execution.local import parse_local_cluster

    try:
        parse_local_cluster(value)
    except InvalidInput as exc:
        raise InvalidInput(
            f"RECHENWERK_LOCAL_CLUSTER: {exc.message}", field="local_cluster",
            hint='Set it to NODESxGPUS[:GPU_TYPE], e.g. "2x8:A100-80GB", or a YAML file\'s '
            "path (docs/jobs.md, Local executor).",
        ) from None


def _prepare_metrics(settings: Settings, port: int, workers: int) -> None:
    """A metrics port apart from the server's, and with several workers prometheus_client's
    multiprocess mode: PROMETHEUS_MULTIPROC_DIR (unless set already) is an emptied folder
    in the data directory, set before the workers start, so every worker's counters are
    summed whichever worker answers a scrape (observability/instruments.py)."""
    import os
    import shutil

    from rechenwerk.errors import InvalidInput
    from rechenwerk.observability.instruments import MULTIPROC_ENV

    if settings.metrics_port and settings.metrics_port == port:
        raise InvalidInput(
            f"RECHENWERK_METRICS_PORT: {port} is the server's own port",
            field="metrics_port",
            hint="Give the metrics a port of their own, or 0 for /metrics on the main port.")
    given = os.environ.get(MULTIPROC_ENV)
    if given:  # the operator's folder, used as it is (emptying it is theirs to do)
        os.makedirs(given, mode=0o700, exist_ok=True)
    elif workers > 1:
        folder = settings.data_dir / "metrics-multiproc"
        shutil.rmtree(folder, ignore_errors=True)  # counts of an earlier run
        folder.mkdir(mode=0o700, parents=True)
        os.environ[MULTIPROC_ENV] = str(folder)


def register(app: typer.Typer) -> None:
    @app.command("server")
    @handle_errors
    def server(
        host: str = typer.Option(None, "--host", help="default: RECHENWERK_HOST (127.0.0.1)"),
        port: int = typer.Option(None, "--port", help="default: RECHENWERK_PORT (8000)"),
        log_level: str = typer.Option("info", "--log-level"),
        log_format: str = typer.Option(
            "text", "--log-format", help="text, or json: one JSON object per line with "
            "request id, user, job and scheduler cycle (docs/operations.md)"),
        workers: int = typer.Option(
            1, "--workers", min=1, max=64,
            help="server processes (e.g. one per core; the scheduler loop runs in one)"),
        access_log: bool = typer.Option(
            True, "--access-log/--no-access-log", help="log every request (costs CPU)"),
    ) -> None:
        """Start the server (REST API at /api/v1, OpenAPI docs at /docs)."""
        import uvicorn

        from rechenwerk.config import check_secret_key, get_settings
        from rechenwerk.errors import InvalidInput
        from rechenwerk.execution.factory import resolve_sandbox
        from rechenwerk.jobs.policy_config import describe
        from rechenwerk.log_format import uvicorn_log_config
        from rechenwerk.notifications.senders import make_sender
        from rechenwerk.private_files import secure_data_dir
        from rechenwerk.production import production_reason
        from rechenwerk.scheduling.policies import make_policy

        if log_format not in ("text", "json"):
            raise InvalidInput(f"--log-format {log_format!r} is not text or json",
                               field="log_format", hint="Use --log-format json or text.")
        if log_level.lower() not in ("critical", "error", "warning", "info", "debug", "trace"):
            raise InvalidInput(f"--log-level {log_level!r} is not a log level",
                               field="log_level",
                               hint="Use critical, error, warning, info, debug or trace.")
        if log_format == "json":  # the start-up lines in the same format as the rest
            logging.config.dictConfig(uvicorn_log_config(log_format, log_level))
        settings = get_settings()
        # A public (development) secret key would let anyone sign session cookies.
        _check_production(settings, host or settings.host)  # refusals before anything else
        warning = (None if production_reason(settings, host or settings.host)
                   else check_secret_key(settings))
        if warning:
            say(warning)
        # Bad scheduler settings stop the start with one line, not a traceback from a
        # worker process later on.
        make_policy(settings.scheduler_policy)
        make_sender(settings)  # e.g. SMTP credentials with RECHENWERK_SMTP_TLS=off
        from rechenwerk.execution.clusters import load_clusters

        load_clusters(settings)  # a bad RECHENWERK_CLUSTERS file: one line, file and key
        if settings.executor == "local":
            _check_local_cluster(settings.local_cluster)
            _, sandbox_warning = resolve_sandbox(settings)
            if sandbox_warning:
                say(sandbox_warning)
        for note in secure_data_dir(settings.data_dir):
            say(note)
        say(f"scheduler: {describe(settings)}")
        bind_host, bind_port = host or settings.host, port or settings.port
        _prepare_metrics(settings, bind_port, workers)
        address = write_server_address(settings.data_dir, bind_host, bind_port)
        say(f"serving on {json.loads(address.read_text())['url']}")
        try:
            uvicorn.run("rechenwerk.cli.server:app_factory", factory=True,
                        host=bind_host, port=bind_port,
                        log_level=log_level, workers=workers, access_log=access_log,
                        log_config=uvicorn_log_config(log_format, log_level))
        finally:
            address.unlink(missing_ok=True)
