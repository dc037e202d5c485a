"""The ledger: SQLAlchemy models, state transitions (leases, events, parking), the outbox, cursors
of periodic passes, the order codec and the Alembic migrations.

May import the core (``worker.domain``, ``worker.config``, ``worker.logs``, ``worker.app``, ...);
never the pipeline, the service or an adapter.
"""
