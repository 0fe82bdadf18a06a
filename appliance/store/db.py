"""Opening the results store: where it is, reaching it, and its schema version.

The store is a database URL: `--db URL`, else APPLIANCE_DB, else an SQLite file under
the user's data directory ($XDG_DATA_HOME/appliance/results.db). Opening it migrates its
schema to this tool's Alembic head; a store of a newer schema, a file that is no
database, a server that does not answer or refuses the credentials, a database that
stays locked: each is one StoreError line naming the store and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError, ProgrammingError

from appliance.errors import ApplianceError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
HEAD = "0002"  # the newest revision in migrations/versions (a test checks they agree): a store at it needs no Alembic
LOCK_WAIT_S = 30  # how long a write waits for another writer (SQLite's busy timeout)


class StoreError(ApplianceError):
    """The results store cannot be used: the line says which store and what to do."""


def default_url() -> str:
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{data / 'appliance' / 'results.db'}"


def url_of(given: str | None) -> str:
    """The store a verb uses: --db, else APPLIANCE_DB, else the default file."""
    return given or os.environ.get("APPLIANCE_DB") or default_url()


def shown(url: str) -> str:
    """URL as it may be printed: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _config() -> Config:
    from alembic.config import Config  # only to migrate: importing Alembic costs a quarter second

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest revision Alembic knows (HEAD is its copy for opening quickly)."""
    from alembic.script import ScriptDirectory

    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None, "the store has migrations"
    return found


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"{url!r} is not a database URL: give sqlite:///PATH or postgresql://USER@HOST/DB") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": LOCK_WAIT_S})

        @event.listens_for(engine, "connect")
        def _foreign_keys(dbapi_connection, record):  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, which setup installs
    try:
        return create_engine(parsed, connect_args={"connect_timeout": 10}, pool_pre_ping=True)
    except NoSuchModuleError:
        raise StoreError(f"{shown(url)}: this tool stores results in SQLite or PostgreSQL only") from None


def describe(exc: DBAPIError, url: str) -> StoreError:
    """The one line for a database error."""
    first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc).splitlines()[0]
    text = first.lower()
    if "locked" in text or "lock timeout" in text:
        return StoreError(f"the results store {shown(url)} stayed locked by another writer for {LOCK_WAIT_S} s "
                          f"({first}): try again when it is done")
    if "not a database" in text or "malformed" in text:
        return StoreError(f"the results store {shown(url)} is damaged ({first}): move it aside and "
                          "`appliance history import` your results files into a new one")
    if "authentication" in text or "password" in text or "role" in text:
        return StoreError(f"the results store {shown(url)} refused the credentials ({first}): check the user and "
                          "password in the URL (or PGPASSWORD)")
    if "connect" in text or "connection" in text or "could not translate" in text or "timeout" in text:
        return StoreError(f"cannot reach the results store {shown(url)} ({first}): start the server or fix the URL; "
                          "--no-record measures without recording")
    return StoreError(f"the results store {shown(url)} failed: {first}")


def _revision(engine: Engine) -> str | None:
    """The store's schema revision, read directly (None: a new store)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError) as exc:
        if "alembic_version" in str(exc.orig):  # no such table: a store not made yet
            return None
        raise


def open_store(given: str | None = None) -> tuple[Engine, str]:
    """The store's engine, its schema at this tool's head (migrated now if older), and
    its URL."""
    url = url_of(given)
    engine = _engine(url)
    try:
        if _revision(engine) == HEAD:
            return engine, url
        from alembic import command
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with engine.begin() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
            if current is not None and current not in known:
                raise StoreError(f"the results store {shown(url)} has schema revision {current}, newer than this "
                                 f"tool knows (its newest is {head()}): upgrade appliance to use it")
            if current != head():
                config = _config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
    except DBAPIError as exc:
        engine.dispose()
        raise describe(exc, url) from None
    return engine, url
