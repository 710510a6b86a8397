"""The test OpenID Provider's process, the centre under test, and what a person does in
a browser at the provider (httpx, for the tests that need no Chromium)."""

from __future__ import annotations

import fcntl
import json
import re
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx

from waiting import wait_for

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc_provider"
CLIENT_ID = "rechenwerk-portal"
# The demo organisation the test provider's home organisation maps to.
UNI_NORD = "Technische Universität Nordstadt"
ENTITLEMENT = (r"urn:geant:rechenwerk\.example:group:(?P<project>[a-z0-9-]+)"
               r"(:role=(?P<role>[a-z]+))?#aai\.example")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_signing_key(kid: str) -> dict[str, Any]:
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"},
                              private=True)
    return dict(key.as_dict(private=True))


@dataclass
class OidcProviderProcess:
    """The node process of the test provider; :meth:`restart` with other keys rotates
    them as a real provider does."""

    port: int
    workdir: Path
    redirect_uri: str
    keys: list[dict[str, Any]]
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def accounts_file(self) -> Path:
        return self.workdir / "accounts.json"

    def set_claims(self, account: str, **claims: Any) -> None:
        """Change what the provider says about ``account`` from its next sign-in on."""
        data = json.loads(self.accounts_file.read_text())
        data[account]["claims"].update(claims)
        self.accounts_file.write_text(json.dumps(data))

    def start(self) -> None:
        config = {
            "issuer": self.issuer, "port": self.port, "accounts_file": str(self.accounts_file),
            "jwks": {"keys": self.keys},
            "clients": [{
                "client_id": CLIENT_ID, "client_secret": self.client_secret,
                "client_name": "Rechenwerk (tests)",
                "redirect_uris": [self.redirect_uri], "response_types": ["code"],
                "grant_types": ["authorization_code",
                                "urn:ietf:params:oauth:grant-type:device_code"],
                "token_endpoint_auth_method": "client_secret_basic",
            }],
        }
        path = self.workdir / "provider.json"
        path.write_text(json.dumps(config))
        log = (self.workdir / "provider.log").open("ab")
        self.proc = subprocess.Popen(["node", str(PROVIDER_DIR / "provider.mjs"), str(path)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     cwd=PROVIDER_DIR)

        def discovery_served() -> bool:
            assert self.proc is not None and self.proc.poll() is None, (
                "the test OpenID Provider exited: "
                + (self.workdir / "provider.log").read_text()[-2000:])
            try:
                r = httpx.get(self.issuer + "/.well-known/openid-configuration", timeout=5)
            except httpx.HTTPError:
                return False
            return r.status_code == 200

        wait_for(discovery_served, "the test OpenID Provider's discovery document")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.proc = None

    def restart(self, keys: list[dict[str, Any]]) -> None:
        self.stop()
        self.keys = keys
        self.start()


def node_ready() -> str | None:
    """None when the provider can run, else why not."""
    if shutil.which("node") is None:
        return "node (Node.js) is not installed: apt-get install nodejs npm"
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        if shutil.which("npm") is None:
            return "npm is not installed, needed once for tests/oidc_provider (npm ci)"
        # One install at a time (parallel test workers share the folder).
        with (PROVIDER_DIR / ".npm-ci.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
                done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"],
                                      cwd=PROVIDER_DIR, capture_output=True, text=True,
                                      timeout=600, check=False)
                if done.returncode != 0:
                    return f"npm ci in {PROVIDER_DIR} failed: {done.stderr[-500:]}"
    return None


@dataclass
class Centre:
    """The Rechenwerk server under test and its provider."""

    url: str
    provider: OidcProviderProcess
    app: Any
    db_url: str
    tokens: dict[str, str]

    _factory: Any = None

    def session(self) -> Any:
        """A session on the server's database (one engine for the whole run)."""
        from rechenwerk.store.session import make_engine, make_session_factory

        if self._factory is None:
            self._factory = make_session_factory(make_engine(self.db_url))
        return self._factory()


class _Forms(HTMLParser):
    """The forms of a page: action, method and inputs (name -> value)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"id": a.get("id", ""), "action": a.get("action", ""),
                               "inputs": {}})
        elif tag == "input" and a.get("name"):
            target = next((f for f in self.forms if a.get("form") and f["id"] == a["form"]),
                          self.forms[-1] if self.forms else None)
            if target is not None:
                target["inputs"][a["name"]] = a.get("value", "")


def forms_of(html: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def provider_login(http: httpx.Client, page: httpx.Response, username: str,
                   password: str) -> httpx.Response:
    """Submit the test provider's login form shown in ``page``; follows no redirect."""
    form = next(f for f in forms_of(page.text) if "login" in f["inputs"])
    return http.post(str(page.url.join(form["action"])),
                     data={"login": username, "password": password})


def follow(http: httpx.Client, response: httpx.Response, *,
           stop: str | None = None) -> httpx.Response:
    """Follow redirects by hand, stopping before a URL that starts with ``stop``."""
    while response.is_redirect:
        target = str(response.url.join(response.headers["location"]))
        if stop is not None and target.startswith(stop):
            return response
        response = http.get(target)
    return response


def browser_sign_in(centre: Centre, username: str, password: str, *,
                    provider: str = "testaai", http: httpx.Client | None = None,
                    stop_at_callback: bool = False) -> tuple[httpx.Client, httpx.Response]:
    """The code flow as a browser does it, with httpx: the portal's button, the
    provider's login form, back to the portal's callback (unless ``stop_at_callback``:
    then the response is the provider's redirect to it). A person who has not accepted
    the centre's current AUP lands on its page: they accept it, as anyone would."""
    http = http or httpx.Client(timeout=30)
    start = follow(http, http.get(f"{centre.url}/login/oidc/{provider}"))
    assert start.status_code == 200, start.text[:500]
    answer = provider_login(http, start, username, password)
    stop = centre.url + "/login/oidc/callback" if stop_at_callback else None
    return http, accept_aup_if_asked(http, follow(http, answer, stop=stop))


def accept_aup_if_asked(http: httpx.Client, page: httpx.Response) -> httpx.Response:
    if page.is_redirect or page.url.path != "/aup":
        return page
    form = next(f for f in forms_of(page.text) if "version" in f["inputs"])
    done = http.post(str(page.url.join(form["action"])), data=form["inputs"])
    return follow(http, done)


def device_confirm(verification_uri: str, user_code: str, username: str,
                   password: str) -> httpx.Response:
    """What a person does in a browser for the device flow: enter the code, confirm,
    sign in at the provider."""
    with httpx.Client(timeout=30) as http:
        r = _device_code_entered(http, verification_uri, user_code)
        confirm = forms_of(r.text)[0]
        r = follow(http, http.post(str(r.url.join(confirm["action"])),
                                   data={**confirm["inputs"], "confirm": "yes"}))
        r = follow(http, provider_login(http, r, username, password))
        assert "Device signed in" in r.text, r.text[:500]
        return r


def _device_code_entered(http: httpx.Client, verification_uri: str,
                         user_code: str) -> httpx.Response:
    page = http.get(verification_uri)
    form = forms_of(page.text)[0]
    return http.post(str(page.url.join(form["action"])),
                     data={**form["inputs"], "user_code": user_code})


def device_abort(verification_uri: str, user_code: str) -> None:
    """The person does not recognise the code and aborts at the provider."""
    with httpx.Client(timeout=30) as http:
        r = _device_code_entered(http, verification_uri, user_code)
        confirm = forms_of(r.text)[0]
        done = follow(http, http.post(str(r.url.join(confirm["action"])),
                                      data={**confirm["inputs"], "abort": "yes"}))
        assert done.status_code < 500, done.text[:500]


def user_code_of(line: str) -> str | None:
    m = re.search(r"code: (\S+)", line)
    return m.group(1) if m else None
