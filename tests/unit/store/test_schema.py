"""The store's schema: the revision a store is opened quickly at is Alembic's head, and
the migrations make exactly the tables schema.py describes."""

from sqlalchemy import create_engine, inspect

from appliance.store import db, schema


def test_the_migrations_make_the_schema_the_code_reads(tmp_path):
    engine, _ = db.open_store(f"sqlite:///{tmp_path / 'r.db'}")
    found = inspect(engine)
    for table in schema.metadata.sorted_tables:
        assert {c["name"] for c in found.get_columns(table.name)} == {c.name for c in table.columns}, table.name
    declared = create_engine("sqlite://")
    schema.metadata.create_all(declared)
    assert {i["name"] for t in schema.metadata.sorted_tables for i in inspect(declared).get_indexes(t.name)} == \
        {i["name"] for t in schema.metadata.sorted_tables for i in found.get_indexes(t.name)}
