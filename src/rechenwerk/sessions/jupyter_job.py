"""What an interactive session runs inside its job: JupyterLab, reachable only through the
portal's proxy (``web/jupyter_proxy.py``), never on a port the user's browser could reach.

Run as ``python -m rechenwerk.sessions.jupyter_job`` (the session's command, set by the
server, never by the user). It needs nothing of the server: only the job's environment.

- On the local executor JupyterLab listens on a Unix socket ``jupyter.sock`` in the
  run's own folder (``RECHENWERK_LOG_DIR``), which the sandbox shows to this job alone.
- On Slurm it listens on a free TCP port of the allocated node; the server connects from
  outside, to that node only (the proxy checks the host against the job's nodes).

Either way the run writes ``session.json`` (mode 0600) beside its logs: the endpoint and
a random token, which the proxy sends as ``Authorization: token ...`` and JupyterLab
requires on every request. The token never appears in the job's spec, the API or a page.
Then this process becomes JupyterLab (``exec``): the job ends when JupyterLab does.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from pathlib import Path

SOCKET_NAME = "jupyter.sock"
INFO_NAME = "session.json"


def base_url(job_id: str | int) -> str:
    """The path prefix JupyterLab serves under: the proxy's route for this job."""
    return f"/jupyter/{int(job_id)}/"


def _free_port() -> int:
    # Bound and released: JupyterLab binds it a moment later (it fails loudly, and the
    # session ends with its log, in the rare case another process took it meanwhile).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _write_info(folder: Path, info: dict[str, object]) -> None:
    tmp = folder / f".{INFO_NAME}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh)
    os.replace(tmp, folder / INFO_NAME)


def command(env: dict[str, str], *, workdir: str, python: str) -> tuple[list[str],
                                                                       dict[str, object]]:
    """JupyterLab's command line for this run and what ``session.json`` records."""
    job_id = env["RECHENWERK_JOB_ID"]
    argv = [python, "-m", "jupyterlab", "--no-browser",
            f"--ServerApp.base_url={base_url(job_id)}",
            f"--ServerApp.root_dir={workdir}",
            # the portal is the only way in: no "open in browser" URL with the token
            "--ServerApp.open_browser=False", "--ServerApp.quit_button=False"]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    info: dict[str, object]
    if env.get("SLURM_JOB_ID"):
        port = _free_port()
        argv += ["--ServerApp.ip=0.0.0.0", f"--ServerApp.port={port}",
                 "--ServerApp.port_retries=0", "--ServerApp.allow_remote_access=True"]
        # the node's Slurm name: the server checks it is one of the job's own nodes
        info = {"node": env.get("SLURMD_NODENAME") or socket.gethostname(), "port": port}
    else:
        # relative to the run's folder (the working directory of JupyterLab's process):
        # a Unix socket's path is limited to 107 bytes
        argv.append(f"--ServerApp.sock={SOCKET_NAME}")
        info = {"socket": SOCKET_NAME}
    return argv, info


def main() -> int:
    env = dict(os.environ)
    missing = [k for k in ("RECHENWERK_JOB_ID", "RECHENWERK_LOG_DIR") if not env.get(k)]
    if missing:
        print(f"jupyter_job: {', '.join(missing)} not set: this runs inside a Rechenwerk "
              "session job only", file=sys.stderr)
        return 2
    folder = Path(env["RECHENWERK_LOG_DIR"])
    workdir = os.getcwd()
    argv, info = command(env, workdir=workdir, python=sys.executable)
    token = secrets.token_urlsafe(32)
    _write_info(folder, {**info, "token": token})
    env["JUPYTER_TOKEN"] = token
    # A centre's session asks nobody about JupyterLab's news feed (it would fetch from
    # the internet): disabled in an extra config folder, the user's own config untouched.
    extra = folder / "jupyter-config"
    (extra / "labconfig").mkdir(parents=True, exist_ok=True)
    (extra / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        p for p in (str(extra), env.get("JUPYTER_CONFIG_PATH", "")) if p)
    # Config and runtime files stay in the job's own home (its working directory).
    env.setdefault("JUPYTER_RUNTIME_DIR", str(folder / "jupyter-runtime"))
    os.chdir(folder)
    print(f"starting JupyterLab for session {env['RECHENWERK_JOB_ID']} "
          f"({'port ' + str(info['port']) if 'port' in info else 'unix socket'})", flush=True)
    os.execve(argv[0], argv, env)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
