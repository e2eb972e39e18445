"""pytest configuration of the `sluice sync` suite (helpers in sync_harness.py)."""
import os

import pytest

from sync_harness import BUILD_DIR, SLUICE


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: waits of several seconds (a member outage past its TTL); left out "
                                       "of the fast tier (tests/run_all.py --fast)")


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.path.isfile(SLUICE):
        pytest.fail(f"build {SLUICE} first (build dir {BUILD_DIR}; set SLUICE_BUILD_DIR): ninja -C {BUILD_DIR} cli/sluice")
