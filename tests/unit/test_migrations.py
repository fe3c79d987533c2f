from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tawasul.db import Base, upgrade


def test_migrations_build_exactly_the_models_schema(db_url, db):
    upgrade(db_url)  # a second upgrade is a no-op
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
