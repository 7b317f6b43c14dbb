"""Where a poll's pass over Zenvia's unordered date listings goes on (`zenvia_pass`)."""

from __future__ import annotations

from syncworker.connectors.zenvia_pass import MAX_RESTARTS, ListingPass

LISTINGS = (("updatedAt", "2026-12-01"), ("createdAt", "2026-12-01"))


def test_a_full_page_leads_to_the_next_page_of_the_same_listing() -> None:
    after = ListingPass(LISTINGS).after(items=100, total=250, page_size=100)
    assert (after.index, after.page, after.total) == (0, 2, 250)
    assert after.params() == {"updatedAt": "2026-12-01"}


def test_a_short_page_or_the_stated_total_ends_the_listing() -> None:
    short = ListingPass(LISTINGS).after(items=40, total=None, page_size=100)
    assert (short.index, short.page, short.total) == (1, 1, None)
    last = ListingPass(LISTINGS, page=3, total=300).after(items=100, total=300, page_size=100)
    assert (last.index, last.page) == (1, 1)
    assert last.params() == {"createdAt": "2026-12-01"}
    assert last.after(items=0, total=0, page_size=100).done


def test_a_growing_listing_goes_on_where_it_was() -> None:
    grown = ListingPass(LISTINGS, page=2, total=250).after(items=100, total=260, page_size=100)
    assert (grown.index, grown.page, grown.restarts) == (0, 3, 0)


def test_a_shrinking_listing_is_read_again_from_its_first_page_a_bounded_number_of_times() -> None:
    position = ListingPass(LISTINGS, page=2, total=250)
    for restart in range(1, MAX_RESTARTS + 1):
        position = position.after(items=100, total=position.total - 1, page_size=100)
        assert (position.index, position.page, position.restarts) == (0, 1, restart)
        position = position.after(items=100, total=position.total, page_size=100)
    final = position.after(items=100, total=position.total - 1, page_size=100)
    assert (final.index, final.page) == (0, 3), "past the bound it goes on"


def test_every_ticket_is_listed_past_the_filter_days() -> None:
    assert ListingPass((("", ""),)).params() == {}


def test_a_position_survives_storage_and_an_unreadable_one_starts_over() -> None:
    position = ListingPass(LISTINGS, index=1, page=4, total=420, restarts=1)
    assert ListingPass.load(position.dump()) == position
    for stored in (None, [], {"listings": LISTINGS}, {**position.dump(), "page": "four"}):
        assert ListingPass.load(stored) is None
