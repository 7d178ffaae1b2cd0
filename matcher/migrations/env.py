"""Alembic environment for the store: runs on the connection the caller hands over.

:meth:`matcher.store.Store.open` puts an open connection, already inside the transaction (and, on
PostgreSQL, holding the migration advisory lock), into ``config.attributes["connection"]``; every
revision runs on it and commits with the caller. Offline (SQL script) mode is not supported: the
SQLite and PostgreSQL triggers are written per dialect at run time.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "the store migrations run through matcher.store.Store.open, which supplies the "
            "connection; there is no alembic.ini"
        )
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported for the store")
run_migrations_online()
