"""Building in bulk holds the garbage collector off only while it builds."""

from __future__ import annotations

import gc

import pytest

from trail.core.bulk import bulk_build


def test_the_collector_runs_again_after_a_build_even_one_that_fails():
    assert gc.isenabled()
    with bulk_build():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), bulk_build():
        raise ValueError("a bad definition")
    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off():
    gc.disable()
    try:
        with bulk_build():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
