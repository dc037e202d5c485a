from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = Path(os.environ.get("AUTOFULFILL_SPECS", ROOT.parent / "shared" / "specs"))


@pytest.fixture(scope="session")
def specs_dir() -> Path:
    assert SPECS.is_dir(), f"official specs not found at {SPECS} (set AUTOFULFILL_SPECS)"
    return SPECS
