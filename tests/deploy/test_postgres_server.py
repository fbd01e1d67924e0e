"""The test PostgreSQL itself: a real server with password authentication, and a loud absence in CI."""

import dataclasses

import pytest
import sqlalchemy as sa

from tests import postgres_server
from tests.postgres_server import PostgresDatabase, PostgresUnavailable


def test_each_test_gets_its_own_empty_database(postgres_database: PostgresDatabase):
    engine = sa.create_engine(postgres_database.url)
    try:
        with engine.connect() as connection:
            name = connection.execute(sa.text("SELECT current_database()")).scalar()
            tables = connection.execute(
                sa.text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            ).scalar()
    finally:
        engine.dispose()
    assert name == postgres_database.db_name
    assert tables == 0


def test_the_server_refuses_a_wrong_password(postgres_database: PostgresDatabase):
    wrong = dataclasses.replace(postgres_database, password="wrong-password")
    engine = sa.create_engine(wrong.url)
    try:
        with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
            engine.connect()
    finally:
        engine.dispose()


def test_a_machine_without_postgres_is_told_how_to_install_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(postgres_server, "glob", lambda pattern: [])
    monkeypatch.setattr(postgres_server.shutil, "which", lambda name: None)
    with pytest.raises(PostgresUnavailable, match="apt-get install -y --no-install-recommends postgresql"):
        postgres_server.find_bin_dir()


def test_an_unavailable_server_skips_locally(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no initdb"):
        postgres_server._skip_or_fail("no initdb")


def test_an_unavailable_server_fails_in_ci(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no initdb"):
        postgres_server._skip_or_fail("no initdb")
