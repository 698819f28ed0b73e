"""Checks of user input that every operator shares: each returns the clean value or raises OmicsInputError with a
message that names the problem and the fix, before anything is created on the service."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_omics.utils.errors import OmicsInputError

FILE_TYPES = ("FASTQ", "BAM", "CRAM", "UBAM")
# BAM and CRAM are aligned: the service links them to a reference (AWS's uploader refuses them without one).
FILE_TYPES_NEEDING_REFERENCE = ("BAM", "CRAM")
# Service model patterns: ids are digit strings of 10..36; a reference is an ARN of a reference store entry
# (ReferenceArn: ``arn:.+``, 1 to 127 characters; matched whole, so a trailing newline is not an ARN).
_ID_RE = re.compile(r"[0-9]{10,36}")
_REFERENCE_ARN_RE = re.compile(r"arn:.+", re.DOTALL)
REFERENCE_ARN_MAX = 127
# The service model's length limits of the read set's metadata.
TEXT_LIMITS = {"name": 127, "subject_id": 127, "sample_id": 127, "generated_from": 127, "description": 255}
REQUIRED_TEXT = ("name", "subject_id", "sample_id")
# The service model's pattern of those fields (ReadSetName, SampleId, SubjectId, GeneratedFrom, ReadSetDescription),
# [\p{L}||\p{M}||\p{Z}||\p{S}||\p{N}||\p{P}]+: letters, marks, separators, symbols, numbers and punctuation, as
# Unicode general categories. What is left (C*: control characters such as a tab, a newline or ESC, format
# characters such as a zero-width space, private-use, surrogate and unassigned code points) the service refuses.
TEXT_CATEGORIES = frozenset("LMZSNP")
_CATEGORY_NAMES = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Co": "a private-use character",
    "Cs": "a lone surrogate",
    "Cn": "an unassigned code point",
}


def check_store_id(sequence_store_id: Any) -> str:
    if isinstance(sequence_store_id, int) and not isinstance(sequence_store_id, bool):
        # A DAG with render_template_as_native_obj turns a rendered id of digits into an int.
        sequence_store_id = str(sequence_store_id)
    if not isinstance(sequence_store_id, str) or not _ID_RE.fullmatch(sequence_store_id):
        raise OmicsInputError(
            f"sequence_store_id={sequence_store_id!r} is not a sequence store id: HealthOmics ids are 10 to 36 "
            "digits. Copy the store's id (not its name or ARN) from the console or `aws omics list-sequence-stores`."
        )
    return sequence_store_id


def check_file_type(source_file_type: Any) -> str:
    value = source_file_type.upper() if isinstance(source_file_type, str) else source_file_type
    if value not in FILE_TYPES:
        raise OmicsInputError(f"source_file_type={source_file_type!r} is not one of {', '.join(FILE_TYPES)}.")
    return value


def check_reference(file_type: str, reference_arn: Any) -> str | None:
    """The reference ARN (None when not given); BAM and CRAM must have one."""
    reference_arn = reference_arn or None
    if file_type in FILE_TYPES_NEEDING_REFERENCE and not reference_arn:
        raise OmicsInputError(
            f"A {file_type} read set must be linked to the reference it was aligned to: set reference_arn "
            "(arn:aws:omics:<region>:<account>:referenceStore/<id>/reference/<id>)."
        )
    if not reference_arn:
        return None
    if (
        not isinstance(reference_arn, str)
        or len(reference_arn) > REFERENCE_ARN_MAX
        or not _REFERENCE_ARN_RE.fullmatch(reference_arn)
    ):
        shown = repr(reference_arn) if len(repr(reference_arn)) <= 200 else repr(reference_arn)[:196] + "...'"
        raise OmicsInputError(
            f"reference_arn={shown} is not an ARN of at most {REFERENCE_ARN_MAX} characters "
            "(arn:aws:omics:<region>:<account>:referenceStore/<id>/reference/<id>)."
        )
    found = disallowed_character(reference_arn)
    if found is not None:
        raise OmicsInputError(
            f"reference_arn={reference_arn!r} is not an ARN: it holds {describe_character(*found)}. Copy the "
            "reference's ARN again (arn:aws:omics:<region>:<account>:referenceStore/<id>/reference/<id>)."
        )
    return reference_arn


def disallowed_character(value: str) -> tuple[int, str] | None:
    """The first character of ``value`` outside :data:`TEXT_CATEGORIES`, and its 0-based index; None if none is."""
    for index, char in enumerate(value):
        if unicodedata.category(char)[0] not in TEXT_CATEGORIES:
            return index, char
    return None


def describe_character(index: int, char: str) -> str:
    """``'\\x1b' (U+001B, a control character) at character 3``: what a message names a refused character by."""
    what = _CATEGORY_NAMES.get(unicodedata.category(char), "a character the service refuses")
    return f"{char!r} (U+{ord(char):04X}, {what}) at character {index + 1}"


def check_text(field: str, value: Any) -> str | None:
    """One metadata field of :data:`TEXT_LIMITS`: required ones must be given; None when an optional one is not.

    The service's pattern applies too (:data:`TEXT_CATEGORIES`): a tab, a newline, an escape sequence or an
    invisible character pasted with the text is refused here, naming the character and where it is, rather than
    by the service after a run's first read sets exist.
    """
    limit = TEXT_LIMITS[field]
    if value in (None, "") and field not in REQUIRED_TEXT:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise OmicsInputError(f"{field}={value!r} must be text of 1 to {limit} characters.")
    found = disallowed_character(value)
    if found is not None:
        raise OmicsInputError(
            f"{field}={value!r} holds {describe_character(*found)}: HealthOmics accepts only letters, marks, "
            "spaces, symbols, numbers and punctuation. Remove it (or replace it by a space or a '_')."
        )
    return value


def as_int(name: str, value: Any, minimum: int = 1) -> int:
    """Accept an int or an int rendered by a template ("104857600"); refuse anything else clearly."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise OmicsInputError(f"{name}={value!r} must be a whole number.")
    if value < minimum:
        raise OmicsInputError(f"{name}={value} must be at least {minimum}.")
    return value


def as_float(name: str, value: Any, minimum: float = 0.0) -> float:
    """Accept a number or a number rendered by a template ("2.5"); refuse anything else clearly."""
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+(\.[0-9]*)?\s*", value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise OmicsInputError(f"{name}={value!r} must be a number.")
    if value < minimum:
        raise OmicsInputError(f"{name}={value} must be at least {minimum:g}.")
    return float(value)


def as_bool(name: str, value: Any) -> bool:
    """Accept a bool or a bool rendered by a template ("True", "false"; empty, or a null param rendered as "None",
    means False)."""
    if isinstance(value, bool):
        return value
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "false", "0", "no")):
        return False
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"):
        return True
    raise OmicsInputError(f"{name}={value!r} must be true or false.")


def normalize_sources(sources: Any) -> list[str]:
    """One path/URI or two (read 1, read 2); an empty read 2 (an optional form field left blank) is dropped.

    Two spellings of one file are caught here when they are the same string; split compares the opened files.
    """
    items = [sources] if isinstance(sources, str) else list(sources or [])
    if len(items) == 2 and (items[1] is None or (isinstance(items[1], str) and not items[1].strip())):
        items = items[:1]
    if not items or not all(isinstance(item, str) and item.strip() for item in items):
        raise OmicsInputError(f"sources={sources!r}: give one staged file, or two (read 1, read 2) for paired FASTQ.")
    if len(items) > 2:
        raise OmicsInputError(
            f"sources has {len(items)} files: a read set has at most two sources (read 1 and read 2)."
        )
    if len(items) == 2 and items[0].strip() == items[1].strip():
        raise OmicsInputError(f"Read 1 and read 2 are the same file ({items[0]}): give the two files of the pair.")
    return [item.strip() for item in items]


def task_budget(max_tasks: Any) -> int:
    """At most this many mapped tasks: ``max_tasks`` when given, never above ``[core] max_map_length`` (its
    default)."""
    map_limit = conf.getint("core", "max_map_length")
    return map_limit if max_tasks in (None, "") else min(as_int("max_tasks", max_tasks), map_limit)
