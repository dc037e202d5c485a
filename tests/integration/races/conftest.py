from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.races.rig import Rig

MakeRig = Callable[..., Rig]


@pytest.fixture
def make_rig(db_url: str, tmp_path: Path) -> Iterator[MakeRig]:
    """``make_rig(extra=..., **stack options)``: a Rig on this test's database (SQLite or PostgreSQL)."""
    made: list[Rig] = []

    def make(**kw: Any) -> Rig:
        rig = Rig(tmp_path / f"rig{len(made)}", db_url, **kw)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()
