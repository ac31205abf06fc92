"""Process-wide settings: dlrun's XLA flags never override the user's."""

from __future__ import annotations

import pytest

from dlrun.runtime import xla_flags


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        ("", "--xla_cpu_copy_insertion_use_region_analysis=true"),
        ("--xla_dump_to=/tmp/d", "--xla_dump_to=/tmp/d --xla_cpu_copy_insertion_use_region_analysis=true"),
        ("--xla_cpu_copy_insertion_use_region_analysis=false", "--xla_cpu_copy_insertion_use_region_analysis=false"),
    ],
)
def test_xla_flags_append_ours_unless_set(current: str, expected: str) -> None:
    assert xla_flags(current) == expected
    assert xla_flags(xla_flags(current)) == expected  # idempotent: every entry point may call it
