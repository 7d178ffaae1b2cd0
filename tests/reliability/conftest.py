"""Session fixtures of the reliability suite: one synthetic population and its calibration."""

from __future__ import annotations

import pytest

from matcher.thresholds import Thresholds
from tests.reliability.harness import Person, calibrate, population

POPULATION = 200  # persons; each test takes disjoint slices of it


@pytest.fixture(scope="session")
def people() -> list[Person]:
    return population(POPULATION)


@pytest.fixture(scope="session")
def thresholds() -> Thresholds:
    return calibrate()
