"""Whole-second stamps: a read in the stamp's own second is not final (docs/real-apis.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncworker.store.repo import UNSETTLED, boundary_version, needs_sync

STAMP = datetime(2026, 12, 1, 10, 0, 29, tzinfo=UTC)
MARGIN = timedelta(seconds=2)  # whole seconds plus one second of clock skew


def test_a_read_in_the_stamps_own_second_is_recorded_short_of_it() -> None:
    assert boundary_version(STAMP, STAMP + timedelta(milliseconds=300), MARGIN) == STAMP - UNSETTLED


def test_a_read_well_after_the_stamp_is_recorded_as_it_is() -> None:
    assert boundary_version(STAMP, STAMP + timedelta(seconds=5), MARGIN) == STAMP


def test_a_record_taken_as_the_last_sync_left_it_keeps_its_version() -> None:
    assert boundary_version(STAMP, None, MARGIN) == STAMP


def test_the_same_stamp_read_again_late_enough_is_synced_once_more() -> None:
    synced = boundary_version(STAMP, STAMP, MARGIN)
    assert needs_sync(STAMP, synced, STAMP + timedelta(seconds=30), MARGIN)


def test_the_same_stamp_read_again_too_soon_is_not_news() -> None:
    synced = boundary_version(STAMP, STAMP, MARGIN)
    assert not needs_sync(STAMP, synced, STAMP + timedelta(seconds=1), MARGIN)


def test_a_final_read_is_never_synced_again_for_the_same_stamp() -> None:
    assert not needs_sync(STAMP, STAMP, STAMP + timedelta(hours=1), MARGIN)


def test_a_newer_stamp_always_needs_a_sync() -> None:
    synced = boundary_version(STAMP, STAMP, MARGIN)
    assert needs_sync(STAMP + timedelta(seconds=1), synced, STAMP + timedelta(seconds=1), MARGIN)
    assert needs_sync(STAMP, None, STAMP, MARGIN)
