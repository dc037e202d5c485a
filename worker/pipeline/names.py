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
