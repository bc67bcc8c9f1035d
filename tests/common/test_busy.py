"""Busy-time merging shared by the protocol layer and the EWS backend (gateway.common.busy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.common.busy import merge_spans


def _h(hours: float) -> datetime:
    return datetime(2025, 3, 4, tzinfo=UTC) + timedelta(hours=hours)


def test_overlapping_and_touching_spans_of_one_type_merge_and_types_stay_apart() -> None:
    spans = [
        (_h(3), _h(4), "BUSY"),
        (_h(1), _h(2), "BUSY"),
        (_h(2), _h(2.5), "BUSY"),  # touches the previous one
        (_h(1.5), _h(5), "BUSY-TENTATIVE"),  # overlaps, but another type
        (_h(3.5), _h(3.75), "BUSY"),  # inside
    ]
    assert merge_spans(spans) == [
        (_h(1), _h(2.5), "BUSY"),
        (_h(1.5), _h(5), "BUSY-TENTATIVE"),
        (_h(3), _h(4), "BUSY"),
    ]


def test_equal_spans_of_different_types_are_ordered_by_type_whatever_the_input_order() -> None:
    tentative, busy = (_h(1), _h(2), "BUSY-TENTATIVE"), (_h(1), _h(2), "BUSY")
    assert merge_spans([tentative, busy]) == merge_spans([busy, tentative]) == [busy, tentative]


def test_nothing_to_merge() -> None:
    assert merge_spans([]) == []
