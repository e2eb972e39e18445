"""tests/proxy reuses the integration harness (tests/integration/integ_harness.py) and its fixtures."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))

from conftest_shared import *  # noqa: E402,F401,F403
