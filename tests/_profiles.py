"""Hypothesis profiles: ``ci`` (default, bounded and reproducible) and ``thorough`` (``make test-slow``).

Selected by the ``HYPOTHESIS_PROFILE`` environment variable; imported by the property tests.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

CI_EXAMPLES = 25
THOROUGH_EXAMPLES = 300
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]

# ci: a fixed seed per test (derandomize) so the default run is reproducible and never flaky
settings.register_profile("ci", max_examples=CI_EXAMPLES, deadline=None, derandomize=True,
                          suppress_health_check=_SLOW_OK, print_blob=True)
# thorough: fresh random examples each run, failures kept in .hypothesis/ for replay
settings.register_profile("thorough", max_examples=THOROUGH_EXAMPLES, deadline=None,
                          suppress_health_check=_SLOW_OK, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
