"""The real service against the connectors' local HTTP stand-ins: the stack the end-to-end tests
and the demo run, and the demo itself. May import anything, ``connectors`` included.
"""
