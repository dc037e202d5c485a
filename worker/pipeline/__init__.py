"""The steps an order goes through: intake (ingest, release), routing (pure), availability, rates,
fulfill, labels, tracking, cancel and adjust; ``names`` are the steps' task names on the queue.

May import the core and ``worker.ledger``; talks to the outside only through the ports
(``worker.ports``) that ``worker.app.App`` hands it — never the service or an adapter.
"""
