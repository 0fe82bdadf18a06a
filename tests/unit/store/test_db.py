"""Opening the results store: which URL a verb uses, URLs refused in one line, passwords never shown, and the quick head."""

import pytest

from appliance.store import db


def test_the_quick_head_is_alembics_head():
    assert db.HEAD == db.head()


def test_a_store_url_names_no_password_when_shown():
    assert db.shown("postgresql://u:secret@host/db") == "postgresql://u:***@host/db"


def test_the_store_is_db_then_appliance_db_then_the_users_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("APPLIANCE_DB", raising=False)
    assert db.url_of(None) == f"sqlite:///{tmp_path / 'appliance' / 'results.db'}"
    monkeypatch.setenv("APPLIANCE_DB", "postgresql://ci@db/results")
    assert db.url_of(None) == "postgresql://ci@db/results"
    assert db.url_of("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize(("url", "said"), [
    ("postgresql://u@h:port/db", "is not a database URL"),
    ("mysql://u@h/db", "SQLite or PostgreSQL only, not mysql"),
    ("sqlite://", "in-memory database: everything recorded would be lost"),
])
def test_stores_this_tool_cannot_keep_results_in_are_one_line(url, said):
    with pytest.raises(db.StoreError, match=said):
        db.open_store(url)


def test_a_folder_as_the_store_is_refused_and_a_new_file_is_made_at_head(tmp_path):
    with pytest.raises(db.StoreError, match="is a directory: give a file"):
        db.open_store(f"sqlite:///{tmp_path}")
    engine, url = db.open_store(f"sqlite:///{tmp_path / 'new' / 'r.db'}")
    assert (tmp_path / "new" / "r.db").is_file() and db._revision(engine, url) == db.HEAD
    assert db.password_warning("postgresql://u:pw@h/db").startswith("warning: the password in --db is visible")
    assert db.password_warning("postgresql://u@h/db") is None
