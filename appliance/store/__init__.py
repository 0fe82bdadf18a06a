"""The results store: every run set the measuring verbs make, with its dimensions, one
row per boot and phase, and the whole results document, in SQLite (the default, one
file under the user's data directory) or PostgreSQL (a team's), through one schema.

`db` opens a store (and migrates its schema), `schema` is the schema, `record` writes a
results document into it, `query` reads run sets and phase series back out.
"""
