"""Timer budgets for tests: the real invariants (DESIGN.md §3) with timers short enough for a test run."""

from __future__ import annotations

from controller.core.budget import Budget

TEST_BUDGET = Budget(
    drain_deadline_s=20.0, drain_rate_per_s=500.0, expected_sockets_per_server=10_000, verify_s=5.0, margin_s=5.0,
    platform_notice_s=60.0, no_progress_window_s=3.0, server_idle_timeout_s=300.0,
)
"""A 60 s notice, 20 s of graceful drain, a reset after 3 s without progress, the release 5 s before the
deadline; the servers never cut an idle test client."""

SLOW_DRAIN_BUDGET = Budget(
    platform_notice_s=60.0, drain_deadline_s=20.0, verify_s=5.0, margin_s=10.0,
    expected_sockets_per_server=400, drain_rate_per_s=20.0,
)
"""A drain paced at 20 sockets/s: a few hundred clients take long enough for something to happen meanwhile."""

E2E = Budget(
    platform_notice_s=60.0, drain_deadline_s=10.0, verify_s=5.0, margin_s=10.0, expected_sockets_per_server=1000,
    drain_rate_per_s=500.0,
)
"""The end-to-end tests' timers: the default no-progress window (3 s) with a notice and drain deadline that fit."""
