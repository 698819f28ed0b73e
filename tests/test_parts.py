"""Part planning, batching and the part-set check (pure functions)."""

from __future__ import annotations

import time

import pytest

from airflow_provider_omics.utils.parts import (
    MAX_PART_SIZE,
    MAX_PARTS_PER_SOURCE,
    PartPlanError,
    batch_parts,
    check_complete_parts,
    check_part_count,
    check_part_size,
    flatten_part_results,
    missing_parts,
    part_range,
)


def test_part_ranges_cover_the_file_exactly() -> None:
    size, part_size = 10 * 1024 + 7, 1024
    ranges = [part_range("SOURCE1", n, size, part_size) for n in range(1, 12)]
    assert [r.offset for r in ranges] == [i * 1024 for i in range(11)]
    assert sum(r.length for r in ranges) == size
    assert ranges[-1].length == 7
    with pytest.raises(PartPlanError):
        part_range("SOURCE1", 12, size, part_size)


@pytest.mark.parametrize("bad", [0, -1, MAX_PART_SIZE + 1, 1.5, "10", True])
def test_part_size_out_of_range_is_refused_with_the_range(bad: object) -> None:
    with pytest.raises(PartPlanError, match="part_size"):
        check_part_size(bad)  # type: ignore[arg-type]


def test_more_than_ten_thousand_parts_names_the_smallest_part_size() -> None:
    size = MAX_PARTS_PER_SOURCE * 1000 + 1
    with pytest.raises(PartPlanError, match=r"at least 1001 bytes"):
        check_part_count("SOURCE1 (x)", size, 1000)
    assert check_part_count("SOURCE1 (x)", size, 1001) <= MAX_PARTS_PER_SOURCE
    assert check_part_count("SOURCE1 (x)", MAX_PARTS_PER_SOURCE * 1000, 1000) == MAX_PARTS_PER_SOURCE


@pytest.mark.parametrize(
    ("counts", "max_tasks"), [([10], 3), ([120, 120], 16), ([1, 9999], 1024), ([5], 100), ([7, 3], 2)]
)
def test_batches_cover_every_part_once_within_the_task_limit(counts: list[int], max_tasks: int) -> None:
    batches = batch_parts(counts, max_tasks)
    assert len(batches) <= max_tasks
    for source, count in zip(("SOURCE1", "SOURCE2"), counts, strict=False):
        numbers = [n for b in batches if b.part_source == source for n in range(b.first_part, b.last_part + 1)]
        assert numbers == list(range(1, count + 1))
        assert all(b.total_parts == count for b in batches if b.part_source == source)


def test_planning_ten_thousand_parts_per_source_is_fast() -> None:
    started = time.perf_counter()
    batches = batch_parts([MAX_PARTS_PER_SOURCE, MAX_PARTS_PER_SOURCE], 1024)
    ranges = [part_range("SOURCE1", n, MAX_PARTS_PER_SOURCE * MAX_PART_SIZE, MAX_PART_SIZE) for n in range(1, 10001)]
    assert len(batches) <= 1024 and len(ranges) == MAX_PARTS_PER_SOURCE
    assert time.perf_counter() - started < 5  # generous: planning touches no file and is linear


def _parts(source: str, numbers: list[int]) -> list[dict[str, object]]:
    return [{"partNumber": n, "partSource": source, "checksum": f"{source}-{n}"} for n in numbers]


def test_complete_parts_are_flattened_checked_and_sorted() -> None:
    mapped = [_parts("SOURCE2", [2, 1]), None, _parts("SOURCE1", [3]), _parts("SOURCE1", [1, 2])]
    ordered = check_complete_parts(flatten_part_results(mapped), {"SOURCE1": 3, "SOURCE2": 2})
    assert [(p["partSource"], p["partNumber"]) for p in ordered] == [
        ("SOURCE1", 1),
        ("SOURCE1", 2),
        ("SOURCE1", 3),
        ("SOURCE2", 1),
        ("SOURCE2", 2),
    ]


@pytest.mark.parametrize(
    ("parts", "expected", "message"),
    [
        (_parts("SOURCE1", [1, 2, 4]), None, r"SOURCE1 is missing parts 3 of 4"),
        (_parts("SOURCE1", [1, 2]) + _parts("SOURCE1", [2]), None, r"part 2 appears twice"),
        (_parts("SOURCE2", [1]), None, r"no SOURCE1 parts"),
        (_parts("SOURCE1", [1, 2]), {"SOURCE1": 5}, r"missing parts 3-5 of 5"),
        (_parts("SOURCE1", [1]), {"SOURCE1": 1, "SOURCE2": 2}, r"SOURCE2 has none of its 2 parts"),
        (_parts("SOURCE1", [1, 2, 3]), {"SOURCE1": 2}, r"parts 3 beyond the 2 planned"),
        ([{"partNumber": 1, "partSource": "SOURCE3", "checksum": "x"}], None, r"malformed"),
    ],
)
def test_incomplete_part_sets_are_refused(parts: list, expected: dict | None, message: str) -> None:
    with pytest.raises(PartPlanError, match=message):
        check_complete_parts(parts, expected)


def test_missing_parts_lists_the_gaps_per_source() -> None:
    parts = _parts("SOURCE1", [1, 3]) + _parts("SOURCE2", [1])
    assert missing_parts(parts, {"SOURCE1": 4, "SOURCE2": 1}) == {"SOURCE1": [2, 4]}
