"""Shared test configuration: Hypothesis profiles and the GPU marker.

Profiles (defined in :mod:`mfdeep.properties._profiles`): ``ci``
(derandomized, sized for 2 cores within CI's budget), ``dev`` (the default
locally), ``thorough`` (10x the examples of ``ci``). Select one with
``HYPOTHESIS_PROFILE=...``; CI sets ``ci``.
"""

import os

import pytest
from hypothesis import settings

from mfdeep.properties import _profiles  # noqa: F401  (registers ci, dev, thorough)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip)
