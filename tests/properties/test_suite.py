"""Runs the importable property suite (mfdeep.properties) inside the test suite."""

from mfdeep.properties.test_properties import *  # noqa: F401,F403
from mfdeep.properties.test_stateful import TestNetworkMachine  # noqa: F401
