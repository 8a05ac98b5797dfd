"""What tests share (as kopf's root conftest does): waiting for a condition, a test budget, the repository's
root, the tokens tests hand to the processes they start, the mark for tests that need root, and running a
piece of the system in the test's event loop for a block.

One copy of each, imported from here (`from tests.support import wait_until, TEST_BUDGET`), so a bound or a
timer is changed in one place.
"""

from __future__ import annotations

from tests.support.budgets import SLOW_DRAIN_BUDGET, TEST_BUDGET
from tests.support.marks import needs_root
from tests.support.paths import REPO_ROOT
from tests.support.tasks import running
from tests.support.tokens import ADMIN_TOKEN, AGENT_TOKEN, API_TOKEN, APP_TOKEN, write_secret
from tests.support.waiting import WITHIN_S, until, wait_until

__all__ = [
    "ADMIN_TOKEN", "AGENT_TOKEN", "API_TOKEN", "APP_TOKEN", "REPO_ROOT", "SLOW_DRAIN_BUDGET", "TEST_BUDGET",
    "WITHIN_S", "needs_root", "running", "until", "wait_until", "write_secret",
]
