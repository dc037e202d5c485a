"""The processes around the pipeline: Celery app and thin tasks, scheduler and sweeper, webhook
receiver, CLI, status, alerts, operator actions, and the one composition root (``bootstrap``).

May import the core, the ledger and the pipeline; only ``bootstrap`` imports ``connectors``.
"""
