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
# sweeps come before new work, so a burst never delays tracking or the reconciliation poll.
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY = {
    CANCEL: 0, ADJUST: 0, PUSH: 0, LOOKUP: 0, ALERT: 0,
    SUBMIT: 3,
    TRACK: 6, POLL: 6, SCANS: 6, INVENTORY: 6,
    RELEASE: 9,
}
