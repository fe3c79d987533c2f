import dataclasses

import pytest

from tawasul import demo
from tawasul.db import Database, upgrade
from tawasul.settings import Settings
from tests.asterisk_fixture import asterisk  # noqa: F401  (fixture)
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
