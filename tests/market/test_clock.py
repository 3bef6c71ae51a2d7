"""Clock sanity: the bounds every tick, bar and plan is held to."""

import math

import numpy as np
import pytest

from pocketquant_pipelines.market.clock import implausible_reason, plausible_mask

NOW = 1_780_000_000.0  # 2026-05-28


@pytest.mark.parametrize(
    ("t", "reason"),
    [
        (NOW, None),
        (NOW + 300, None),            # inside the skew
        (NOW + 300.001, "future"),
        (32_503_680_000.0, "future"),  # 3000-01-01
        (0.0, None),
        (-0.001, "before_epoch"),
        (math.nan, "before_epoch"),
    ],
)
def test_reason_names_why_a_time_is_implausible(t, reason):
    assert implausible_reason(t, NOW, 300.0) == reason


def test_mask_agrees_with_the_scalar_rule():
    times = np.array([NOW, NOW + 299, NOW + 301, -1.0, 0.0, math.nan, 32_503_680_000.0])
    expected = [implausible_reason(float(t), NOW, 300.0) is None for t in times]
    assert plausible_mask(times, NOW, 300.0).tolist() == expected
