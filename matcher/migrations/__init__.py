"""Alembic migrations of the durable store (:mod:`matcher.store`).

They run programmatically: :meth:`matcher.store.Store.open` migrates to head on every start, with
the ``alembic.config.Config`` of :func:`matcher.store.alembic_config` (``script_location`` is this
folder, ``attributes["connection"]`` the open connection; see ``env.py``). No ``alembic.ini``.

A new revision: ``alembic.command.revision(matcher.store.alembic_config(), "what changes",
rev_id="0002")``, then write its ``upgrade()``/``downgrade()`` by hand (SQLite needs
``op.batch_alter_table`` for most ALTERs) and mirror the change in ``matcher.store``'s tables;
``tests/test_store.py`` checks the two agree.
"""
