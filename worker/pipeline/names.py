"""The Celery task names, in one place (the outbox stores them; tasks.py registers them)."""

RELEASE = "autofulfill.release"
SUBMIT = "autofulfill.submit"
PUSH = "autofulfill.push"
POLL = "autofulfill.poll"
TRACK = "autofulfill.track"
CANCEL = "autofulfill.cancel"
SCANS = "autofulfill.scans"
ALERT = "autofulfill.alert"
ADJUST = "autofulfill.adjust"
LOOKUP = "autofulfill.lookup"  # a submitted MCF order no tracking sweep saw, looked up by id
INVENTORY = "autofulfill.inventory"

# The order a worker takes queued tasks in (Redis broker; 0 first). Work on orders already under
# way goes ahead of new work: a burst of new orders waits in RELEASE while what they started — the
# MCF create, the tracking push, a cancellation — is never stuck behind the rest of the burst. The
# sweeps come before new work, so a burst never delays tracking or the reconciliation poll. The
# release the receiver sends as an order comes in goes one step before the scheduler's releases (a
# hold that ended, a retry, the back-stop's re-send of one still queued after its 120 s): after a
# 10,000-order burst 9,000 re-sends were queued, and a new order's release waited behind them.
PRIORITY_STEPS = (0, 3, 6, 8, 9)
PRIORITY = {
    CANCEL: 0, ADJUST: 0, PUSH: 0, LOOKUP: 0, ALERT: 0,
    SUBMIT: 3,
    TRACK: 6, POLL: 6, SCANS: 6, INVENTORY: 6,
    RELEASE: 9,
}
# The outbox key of a release sent at once: "release:<order id>" (an order just in, hold 0) or
# "release:<order id>:<changes>" (one that changed while it was routed).
NEW_RELEASE = "release:"


def priority(task: str, key: str) -> int:
    """The step a task goes to; ``key`` is its outbox key."""
    if task == RELEASE and key.startswith(NEW_RELEASE):
        return 8
    return PRIORITY.get(task, PRIORITY_STEPS[-1])
