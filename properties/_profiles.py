"""Hypothesis profiles shared by the test suite and ``mfdeep properties``.

``ci``: derandomized and sized for two cores within CI's budget; ``dev``:
the default; ``thorough``: ten times the examples of ``ci``.
"""

from hypothesis import HealthCheck, settings

CI_EXAMPLES = 25

settings.register_profile("ci", max_examples=CI_EXAMPLES, derandomize=True,
                          deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          print_blob=True)
settings.register_profile("dev", max_examples=2 * CI_EXAMPLES, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=10 * CI_EXAMPLES, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
