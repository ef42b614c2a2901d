"""Event stores for tests, on both backends: a SQLite file under the test's ``tmp_path``, and a schema of its own in
the PostgreSQL database named by ``CHORUS_TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
created for the test and dropped after it. Nothing the test did not create is dropped."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

DATABASE_URL = os.environ.get("CHORUS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


def _admin() -> sa.Engine:
    return sa.create_engine(sa.engine.make_url(DATABASE_URL).set(drivername="postgresql+psycopg"))


def with_schema(url: str, schema: str) -> str:
    """``url`` with its connections' ``search_path`` set to ``schema``."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def _postgres_schema() -> Iterator[str]:
    schema = f"chorus_test_{secrets.token_hex(6)}"
    admin = _admin()
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"no PostgreSQL at CHORUS_TEST_DATABASE_URL={DATABASE_URL}: {exc.orig}")
    try:
        yield with_schema(DATABASE_URL, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty event store, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.db'}"
    else:
        yield from _postgres_schema()
