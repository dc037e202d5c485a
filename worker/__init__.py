"""autofulfill's application. This folder's own modules are the core every room shares: the
domain records (``domain``), the ports adapters implement (``ports``), the error tree
(``errors``), the config (``config``), structured logs (``logs``) and what a step is handed
(``app``). The core imports nothing else of ``worker/`` and no adapter.

Rooms, each may import the core and the rooms listed before it:

    ledger/    the database: models, state transitions, outbox, cursors, codec, migrations
    pipeline/  the steps an order goes through: intake (ingest, release), routing, availability,
               rates, fulfill, labels, tracking, cancel, adjust; and the stock sync (inventory)
    service/   the processes around them: Celery tasks, scheduler, web receiver, CLI, status,
               alerts; ``service/bootstrap.py`` is the one composition root that builds adapters
    sandbox/   the whole service against the connectors' local stand-ins: test stack and demo

Only ``service/bootstrap.py`` and ``sandbox/`` import ``connectors``
(``tests/unit/test_layout.py`` keeps it so).
"""
