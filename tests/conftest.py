"""Shared fixtures."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA_DIR = (REPO_ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real biometric images (../shared/data from the repo root); never copied into the repo."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip("real data folder ../shared/data is absent")
    return SHARED_DATA_DIR
