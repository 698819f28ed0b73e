"""Part planning for direct uploads: byte ranges per source, batches per mapped task, and the part set check.

Pure functions with no I/O: the split operator plans with them, the part-upload task expands its batch with
them, and the complete operator checks the collected parts with them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_omics.utils.payloads import PartResult, PartRun

# HealthOmics API reference, UploadReadSetPart: "Each part cannot be larger than 100 MB"; AWS's own uploader
# (aws-healthomics-tools) uses 100 MiB parts, and so does the user guide's `split -b 100MiB`.
MAX_PART_SIZE = 100 * 1024 * 1024
# partNumber is 1..10000 (service model), numbered per source.
MAX_PARTS_PER_SOURCE = 10_000
PART_SOURCES = ("SOURCE1", "SOURCE2")


class PartPlanError(ValueError):
    """A plan that the service would refuse; the message names the problem and the fix."""


@dataclass(frozen=True)
class PartRange:
    """One part: a byte range of one staged source."""

    part_source: str
    part_number: int
    offset: int
    length: int


@dataclass(frozen=True)
class PartBatch:
    """Consecutive parts of one source, uploaded by one mapped task."""

    part_source: str
    first_part: int
    last_part: int
    total_parts: int

    @property
    def count(self) -> int:
        return self.last_part - self.first_part + 1


def check_part_size(part_size: int) -> None:
    if isinstance(part_size, bool) or not isinstance(part_size, int):
        raise PartPlanError(f"part_size must be a whole number of bytes, got {part_size!r}.")
    if not 0 < part_size <= MAX_PART_SIZE:
        raise PartPlanError(
            f"part_size={part_size} is out of range: HealthOmics accepts parts of 1 to {MAX_PART_SIZE} bytes "
            "(100 MiB). Choose a part size in that range."
        )


def part_count(size: int, part_size: int) -> int:
    """How many parts a source of ``size`` bytes has (at least one: an empty source is refused earlier)."""
    return max(1, math.ceil(size / part_size))


def check_part_count(source_label: str, size: int, part_size: int) -> int:
    count = part_count(size, part_size)
    if count > MAX_PARTS_PER_SOURCE:
        smallest = math.ceil(size / MAX_PARTS_PER_SOURCE)
        raise PartPlanError(
            f"{source_label} ({size} bytes) would need {count} parts of {part_size} bytes, above the service's "
            f"limit of {MAX_PARTS_PER_SOURCE} parts per source. Use a part_size of at least {smallest} bytes."
        )
    return count


def part_range(part_source: str, part_number: int, size: int, part_size: int) -> PartRange:
    """The byte range of ``part_number`` (1-based) of a source of ``size`` bytes."""
    offset = (part_number - 1) * part_size
    if part_number < 1 or offset >= max(size, 1):
        raise PartPlanError(f"{part_source} has no part {part_number} with size={size}, part_size={part_size}.")
    return PartRange(part_source, part_number, offset, min(part_size, size - offset))


def batch_parts(counts: Sequence[int], max_tasks: int) -> list[PartBatch]:
    """Group the parts of each source into at most ``max_tasks`` batches of consecutive parts.

    ``counts[i]`` is the number of parts of source i (SOURCE1, SOURCE2). A batch never spans two sources.
    Batches are as even as the sources allow: the smallest batch size that fits in ``max_tasks``.
    """
    if max_tasks < len(counts):
        raise PartPlanError(f"max_tasks={max_tasks} is below the number of sources ({len(counts)}).")
    per_batch = max(1, math.ceil(sum(counts) / max_tasks))
    while sum(math.ceil(c / per_batch) for c in counts) > max_tasks:
        per_batch += 1
    batches = []
    for part_source, count in zip(PART_SOURCES, counts, strict=False):
        for first in range(1, count + 1, per_batch):
            batches.append(PartBatch(part_source, first, min(first + per_batch - 1, count), count))
    return batches


def mapped_values(values: Any) -> list[Any]:
    """The values of a mapped task's output (Airflow's lazy XCom sequence), read by index: iterating it reads one
    value past the end, which Airflow logs as an error in a run that is fine."""
    if values is None:
        return []
    if hasattr(values, "__len__") and hasattr(values, "__getitem__") and not isinstance(values, Mapping):
        return [values[index] for index in range(len(values))]
    return list(values)


def flatten_part_results(results: Iterable[Any]) -> list[dict[str, Any]]:
    """Flatten the mapped tasks' XComs (lists of PartResult; None where a task pushed nothing).

    Not yet trusted: :func:`check_complete_parts` checks every entry.
    """
    parts: list[dict[str, Any]] = []
    for item in mapped_values(results):
        if item is None:
            continue
        if isinstance(item, Mapping):
            parts.append(dict(item))
        else:
            parts.extend(dict(p) for p in item)
    return parts


def missing_parts(parts: Iterable[Mapping[str, Any]], expected: Mapping[str, int]) -> dict[str, list[int]]:
    """Part numbers of each source in ``expected`` (source -> total parts) not present in ``parts``."""
    seen: dict[str, set[int]] = {source: set() for source in expected}
    for part in parts:
        seen.setdefault(part["partSource"], set()).add(int(part["partNumber"]))
    return {
        source: sorted(set(range(1, total + 1)) - seen[source])
        for source, total in expected.items()
        if set(range(1, total + 1)) - seen[source]
    }


def check_complete_parts(
    parts: Iterable[Mapping[str, Any]], expected: Mapping[str, int] | None = None
) -> list[PartResult]:
    """Check that the parts are a whole upload and return them sorted for CompleteMultipartReadSetUpload.

    Every source must be numbered 1..N with no gap and no duplicate, SOURCE1 must be present, and where
    ``expected`` (source -> total parts, from the split plan) is given the totals must match it.
    """
    by_source: dict[str, dict[int, str]] = {}
    problems = []
    for part in parts:
        source, number, checksum = part.get("partSource"), part.get("partNumber"), part.get("checksum")
        if source not in PART_SOURCES or not isinstance(number, int) or not checksum:
            problems.append(f"malformed part entry {dict(part)!r}")
            continue
        numbers = by_source.setdefault(source, {})
        if number in numbers:
            problems.append(f"{source} part {number} appears twice")
        numbers[number] = checksum
    if "SOURCE1" not in by_source:
        problems.append("no SOURCE1 parts")
    for source, numbers in sorted(by_source.items()):
        total = (expected or {}).get(source, max(numbers))
        gaps = sorted(set(range(1, total + 1)) - set(numbers))
        extra = sorted(n for n in numbers if not 1 <= n <= total)
        if gaps:
            problems.append(f"{source} is missing parts {_ranges(gaps)} of {total}")
        if extra:
            problems.append(f"{source} has parts {_ranges(extra)} beyond the {total} planned")
    for source in sorted(set(expected or {}) - set(by_source)):
        problems.append(f"{source} has none of its {(expected or {})[source]} parts")
    if problems:
        raise PartPlanError("The uploaded parts are not a whole read set: " + "; ".join(problems) + ".")
    return [
        PartResult(partNumber=number, partSource=source, checksum=by_source[source][number])
        for source in sorted(by_source)
        for number in sorted(by_source[source])
    ]


def _ranges(numbers: Sequence[int]) -> str:
    """Compact '1-3, 7' notation so that a message about thousands of parts stays readable."""
    spans: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(spans)


# The checksums a run's part task carries through XCom at most (characters of checksums, about the bytes of its
# XCom value): beyond it the task returns only which parts it uploaded, and complete reads their checksums back
# from the service (ListReadSetUploadParts), so that no XCom value nears Airflow's and the database's limits.
RUN_CHECKSUMS_LIMIT = 256 * 1024


def compact_parts(parts: Iterable[Mapping[str, Any]]) -> list[PartRun]:
    """Uploaded parts as runs of consecutive part numbers per source, each with its checksums in order."""
    runs: list[PartRun] = []
    for part in sorted(parts, key=lambda p: (p["partSource"], int(p["partNumber"]))):
        source, number = part["partSource"], int(part["partNumber"])
        last = runs[-1] if runs else None
        if last is not None and last["partSource"] == source and last["last"] + 1 == number:
            last["last"] = number
            assert last["checksums"] is not None
            last["checksums"].append(str(part["checksum"]))
        else:
            runs.append(PartRun(partSource=source, first=number, last=number, checksums=[str(part["checksum"])]))
    return runs


def checksum_chars(runs: Iterable[PartRun]) -> int:
    """How many characters of checksums ``runs`` carry."""
    return sum(len(c) + 3 for run in runs for c in run["checksums"] or [])


def fit_part_runs(runs_by_sample: Mapping[str, list[PartRun]], limit: int = RUN_CHECKSUMS_LIMIT) -> int:
    """Leave the checksums of ``runs_by_sample`` with the service when they are more than ``limit`` characters
    (each run keeps which parts it covers; complete reads the checksums back). Returns the characters carried
    before; the runs are changed in place."""
    carried = sum(checksum_chars(runs) for runs in runs_by_sample.values())
    if carried > limit:
        for runs in runs_by_sample.values():
            for run in runs:
                run["checksums"] = None
    return carried


def expand_parts(runs: Iterable[Mapping[str, Any]]) -> tuple[list[PartResult], dict[str, set[int]]]:
    """The parts of ``runs`` (see :func:`compact_parts`): those whose checksums were carried, as PartResult, and
    per source every part number the runs cover (carried or left with the service)."""
    parts: list[PartResult] = []
    covered: dict[str, set[int]] = {}
    for run in runs:
        source, first, last = run["partSource"], int(run["first"]), int(run["last"])
        covered.setdefault(source, set()).update(range(first, last + 1))
        checksums = run.get("checksums")
        if checksums is not None:
            if len(checksums) != last - first + 1:
                raise PartPlanError(f"{source} parts {first}-{last} carry {len(checksums)} checksums")
            parts.extend(
                PartResult(partNumber=first + i, partSource=source, checksum=checksum)
                for i, checksum in enumerate(checksums)
            )
    return parts, covered
