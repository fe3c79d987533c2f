import dataclasses

import pytest

from tawasul import demo
from tawasul.db import Database, upgrade
from tawasul.settings import Settings
from tests.asterisk_fixture import asterisk, provisioned_asterisk  # noqa: F401  (fixtures)
from tests.phones import agi_server, module_phones, phones  # noqa: F401  (fixtures: one FastAGI server per session)
from tests.postgres_fixture import postgres_server  # noqa: F401  (fixture)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return dataclasses.replace(Settings(), state_dir=tmp_path / "var", demo=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, settings):
    if request.param == "sqlite":
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        return settings.db_url
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture
def db(db_url) -> Database:
    upgrade(db_url)
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def demo_db(db, settings) -> Database:
    """A database holding the demo region."""
    with db.write() as session:
        demo.seed(session, settings)
    return db


@pytest.fixture
def web_app(settings):
    """The Flask app over a demo database (SQLite), with CSRF and rate limits on as in production."""
    from web import create_app, limiter

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    database = Database(settings.db_url)
    with database.write() as session:
        passwords = demo.seed(session, settings)
    database.dispose()
    app = create_app({"TAWASUL_SETTINGS": settings, "TESTING": True})
    app.demo_passwords = passwords
    limiter.reset()
    yield app
    app.extensions["tawasul.db"].dispose()


@pytest.fixture
def client(web_app):
    return web_app.test_client()


def csrf_token(client, path="/login") -> str:
    import re

    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


@pytest.fixture
def login(web_app, client):
    """login("staff") signs the client in as that demo account."""
    def sign_in(username: str):
        response = client.post("/login", data={"csrf_token": csrf_token(client), "username": username,
                                               "password": web_app.demo_passwords[username]})
        assert response.status_code == 302, response.get_data(as_text=True)
        return client
    return sign_in


@pytest.fixture
def service_tmp():
    """A temporary folder the service users can reach (pytest's own is 0700 root): `tawasul up`
    started as root refuses a state folder its services cannot reach."""
    import shutil
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="tawasul-test-", dir="/tmp"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
