"""Opening the results store: where it is, reaching it, and its schema version.

The store is a database URL: `--db URL`, else APPLIANCE_DB, else an SQLite file under
the user's data directory ($XDG_DATA_HOME/appliance/results.db). Opening it migrates its
schema to this tool's Alembic head; a store of a newer schema, a file that is no
database, a server that does not answer or refuses the credentials, a database that
stays locked: each is one StoreError line naming the store and what to do.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
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
    except (ArgumentError, ValueError):  # not a URL we can parse: hide what could be a password
        return url.split("@", 1)[-1] if "@" in url else url


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


def _parsed(url: str) -> URL:
    """URL parsed and checked: SQLite with a file, or PostgreSQL (one line otherwise)."""
    try:
        parsed = make_url(url)
        _ = parsed.port  # a port that is not a number fails here, not inside a driver
    except (ArgumentError, ValueError):
        raise StoreError(f"{shown(url)!r} is not a database URL: give sqlite:///PATH or postgresql://USER@HOST/DB "
                         "(a port, if given, is a number)") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(f"{shown(url)}: this tool stores results in SQLite or PostgreSQL only, not {backend}")
    if backend == "sqlite" and (not parsed.database or parsed.database == ":memory:"):
        raise StoreError(f"{shown(url)} is an in-memory database: everything recorded would be lost at exit; give a "
                         "file, sqlite:///PATH")
    return parsed


def _sqlite_file(path: Path, url: str) -> None:
    """Refuse, in one line, an SQLite store that cannot be a file we read and write."""
    if path.is_dir():
        raise StoreError(f"the results store {path} is a directory: give a file, e.g. {path / 'results.db'}")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot make the folder of the results store {url}: {exc.strerror}") from None
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(f"the results store {path} is not readable and writable by you: fix its permissions or "
                         "give another --db")
    if not path.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"cannot create the results store in {folder} (not writable): give another --db")


def password_warning(url: str) -> str | None:
    """A warning when a password is written in a --db URL: any user can read it in ps."""
    try:
        return ("warning: the password in --db is visible to every user of this machine (ps) while appliance runs: "
                "put the URL in APPLIANCE_DB, or the password in PGPASSFILE (~/.pgpass)") \
            if make_url(url).password else None
    except (ArgumentError, ValueError):
        return None


def _engine(url: str) -> Engine:
    parsed = _parsed(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        _sqlite_file(Path(parsed.database), url)
        engine = create_engine(parsed, connect_args={"timeout": LOCK_WAIT_S})

        @event.listens_for(engine, "connect")
        def _foreign_keys(dbapi_connection, record):  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, which setup installs
    try:
        return create_engine(parsed, connect_args={"connect_timeout": 10}, pool_pre_ping=True)
    except (NoSuchModuleError, ModuleNotFoundError):
        raise StoreError(f"{shown(url)}: its driver {parsed.drivername} is not installed; use postgresql:// "
                         "(psycopg 3, which setup installs)") from None


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
    if "database" in text and "does not exist" in text:
        name = make_url(url).database
        return StoreError(f"the PostgreSQL server of {shown(url)} has no database {name!r} ({first}): create it "
                          f"(createdb {name}) or fix the URL")
    if "authentication" in text or "password" in text or "role" in text:
        return StoreError(f"the results store {shown(url)} refused the credentials ({first}): check the user and "
                          "password in the URL (or PGPASSWORD)")
    if "connect" in text or "connection" in text or "could not translate" in text or "timeout" in text:
        return StoreError(f"cannot reach the results store {shown(url)} ({first}): start the server or fix the URL; "
                          "--no-record measures without recording")
    return StoreError(f"the results store {shown(url)} failed: {first}")


def _revision(engine: Engine, url: str) -> str | None:
    """The store's schema revision, read directly (None: a new store); one line for a
    database that has the store's tables without a revision (made by hand, or damaged)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError) as exc:
        if "alembic_version" not in str(exc.orig):
            raise
    tables = set(inspect(engine).get_table_names())
    if tables:  # no version, but tables: not a store this tool made, or one whose version was lost
        raise StoreError(f"{shown(url)} holds tables ({', '.join(sorted(tables)[:4])}) but no schema version "
                         "(alembic_version): not a results store this tool made, or a damaged one; give another "
                         "--db, or move it aside")
    return None


@contextmanager
def _migrating(engine: Engine, url: str) -> Iterator[None]:
    """One migration at a time: two processes that open a new store at once would both
    create its tables (1 in 4 failed). SQLite: an exclusive lock on a file beside it;
    PostgreSQL: a session advisory lock."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        with open(f"{parsed.database}.migrate.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})


MIGRATION_LOCK = 0x4150504C  # "APPL": the advisory lock a PostgreSQL store's migration takes


def open_store(given: str | None = None) -> tuple[Engine, str]:
    """The store's engine, its schema at this tool's head (migrated now if older), and
    its URL."""
    url = url_of(given)
    warning = password_warning(given) if given else None  # APPLIANCE_DB is not on the command line
    if warning:
        print(warning, file=sys.stderr)
    engine = _engine(url)
    try:
        if _revision(engine, url) == HEAD:
            return engine, url
        with _migrating(engine, url):
            _migrate(engine, url)
    except DBAPIError as exc:
        engine.dispose()
        raise describe(exc, url) from None
    except StoreError:
        engine.dispose()
        raise
    return engine, url


def _migrate(engine: Engine, url: str) -> None:
    """Bring the store to this tool's head (under _migrating: another process may have
    done it meanwhile, which is then found and nothing is done)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    if _revision(engine, url) == HEAD:
        return
    with engine.begin() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
        if current is not None and current not in known:
            raise StoreError(f"{shown(url)} has schema revision {current!r}, which this tool does not know (its "
                             f"newest is {head()}): a newer appliance's store (upgrade appliance), or another "
                             "program's database (give another --db)")
        if current != head():
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
