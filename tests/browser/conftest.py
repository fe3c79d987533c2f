import subprocess

import pytest

from tawasul import demo
from tawasul.db import Database, upgrade
from tests.live import free_port, stop, tawasul, wait_http

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]


WEB_ACCOUNTS: dict[str, str] = {}  # the demo accounts' passwords on web_server
WEB_STATE: dict = {}  # "db_url": the database of web_server (for tests that set up data directly)


@pytest.fixture(scope="session")
def web_accounts(web_server) -> dict[str, str]:
    """username -> password of the demo accounts on `web_server`."""
    return WEB_ACCOUNTS


@pytest.fixture(scope="session")
def web_db_url(web_server) -> str:
    """The database URL of `web_server` (for tests that set up data directly)."""
    return WEB_STATE["db_url"]


@pytest.fixture(scope="session")
def web_server(tmp_path_factory):
    """The real web app under gunicorn, on a free port, over a demo database."""
    state = tmp_path_factory.mktemp("web") / "var"
    from tawasul.settings import load
    settings = load({"state_dir": state, "demo": True}, environ={})
    state.mkdir()
    upgrade(settings.db_url)
    WEB_STATE["db_url"] = settings.db_url
    db = Database(settings.db_url)
    with db.write() as session:
        WEB_ACCOUNTS.update(demo.seed(session, settings))
    db.dispose()
    port = free_port()
    env = {"TAWASUL_STATE_DIR": str(state), "TAWASUL_DEMO": "1", "TAWASUL_WEB_PORT": str(port),
           # Every browser test signs in from 127.0.0.1, a dozen in a minute: above one person's limit.
           "TAWASUL_SIGN_IN_RATE_LIMIT": "200 per minute"}
    # gunicorn's own log, kept beside the state folder: if the server dies mid-session, it says why.
    with open(state.parent / "gunicorn.log", "ab") as log:
        process = tawasul(["web", "serve", "--workers", "2"], env, stdout=log, stderr=subprocess.STDOUT)
    print(f"web_server log: {state.parent / 'gunicorn.log'}")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", process)
    yield url
    stop(process)


@pytest.fixture(scope="session")
def playwright():
    """One Playwright for the session (its sync API allows one per thread)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="session")
def browser(playwright):
    chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="ar-SA")
    page = context.new_page()
    yield page
    context.close()
