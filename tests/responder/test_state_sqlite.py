"""What only the SQLite store does: its file and directory failing.

The guarantees every store keeps (compare-and-set, journal, lease and fencing,
freeze, history, races across threads and processes) are in test_store_guarantees.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from responder.state.sqlite.store import SqliteStore
from responder.state.store import StoreUnavailable
from tests.responder.fakes import EAST


def test_unusable_file_is_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db", EAST)
    store.ping()
    (tmp_path / "state.db").unlink()
    (tmp_path / "state.db").mkdir()  # the path now names a directory
    with pytest.raises(StoreUnavailable, match="state store"):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.state()


def test_unwritable_directory_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreUnavailable, match="cannot create"):
        SqliteStore(tmp_path / "file" / "state.db", EAST)
