"""Sequencing-run manifests: the list of read sets one run uploads, read from a CSV sample sheet or from the JSON a
team already gives StartReadSetImportJob, and checked as a whole before anything exists on the service.

Two steps: one that needs nothing but the text, and one that looks at the staged files.

- :func:`parse_manifest` (pure) / :func:`read_manifest` (loads it, then parses): every row against the rules of the
  single read set path (:mod:`~airflow_provider_omics.utils.inputs`), and rows that name one read set or one file
  twice. Returns :class:`~airflow_provider_omics.utils.payloads.ManifestRow` objects.
- :func:`check_manifest_sources` (I/O): every staged source exists, is allowed and within the part limit; returns
  the :class:`~airflow_provider_omics.utils.payloads.PlannedSample` objects a run's split plans its parts from.

:func:`validate_manifest` runs both on a manifest file and reports the problems of both steps together. Each
raises one :class:`ManifestError` listing every problem with its row (and CSV line) and column.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NoReturn

from airflow_provider_omics.staging.sources import (
    Fingerprint,
    LocalSource,
    S3Source,
    SourceError,
    StagedSource,
    allow_lists,
    parse_source,
    plan_source,
    same_source,
    stage_source,
)
from airflow_provider_omics.utils.errors import OmicsInputError
from airflow_provider_omics.utils.inputs import (
    FILE_TYPES_NEEDING_REFERENCE,
    as_int,
    check_file_type,
    check_reference,
    check_text,
    normalize_sources,
)
from airflow_provider_omics.utils.parts import (
    MAX_PART_SIZE,
    PART_SOURCES,
    PartPlanError,
    check_part_size,
)
from airflow_provider_omics.utils.payloads import ManifestRow, PlannedSample, PlannedSource, sample_key
from airflow_provider_omics.utils.tags import REQUEST_TAG

log = logging.getLogger(__name__)

# A sample sheet of thousands of rows is well under a megabyte; anything near this is a sequencing file given by
# mistake, and is refused before it is loaded into a worker's memory.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
# A NovaSeq X run is at most 384 samples (768 files): 10,000 rows is 26 such runs. Every row costs the plan's
# checks, one stat per source and a share of the plan's XCom: a 100,000-row manifest took tens of seconds and
# hundreds of MiB to refuse row by row (benchmarks/bench_manifest.py), so a longer one is refused at once, its rows
# counted before any row is checked.
MAX_MANIFEST_ROWS = 10_000
# A real JSON manifest nests four deep: {"sources": [{"sourceFiles": {...}, "tags": {...}}]}. Deeper JSON is no
# manifest, and JSON nested thousands deep would exhaust the parser's recursion (a RecursionError, which Airflow
# retries): the depth is counted on the text, without recursion, before the text is parsed.
MAX_MANIFEST_DEPTH = 8
# Beyond this a failure message stops being read; the count of the rest is still given.
MAX_LISTED_PROBLEMS = 50
# A sample id shown in a problem's place is cut to this many characters (the cell itself may be what is wrong).
MAX_SHOWN_SAMPLE = 40

CSV = "csv"
JSON = "json"
FORMAT_NAMES = {CSV: "CSV", JSON: "JSON"}

CSV_COLUMNS = (
    "sample_id",
    "subject_id",
    "name",
    "read1",
    "read2",
    "file_type",
    "reference_arn",
    "generated_from",
    "description",
)
REQUIRED_CSV_COLUMNS = ("sample_id", "subject_id", "name", "read1")
# The botocore model's StartReadSetImportJobSourceItem members, and the ManifestRow field each fills.
JSON_KEYS = {
    "sourceFiles": "sources",
    "sourceFileType": "file_type",
    "subjectId": "subject_id",
    "sampleId": "sample_id",
    "name": "name",
    "referenceArn": "reference_arn",
    "generatedFrom": "generated_from",
    "description": "description",
    "tags": "tags",
}
JSON_SOURCE_KEYS = ("source1", "source2")
# StartReadSetImportJobRequest's other members: an import request body is accepted as it is, and these say nothing
# about a direct upload (the run's own sequence_store_id decides the store).
IMPORT_REQUEST_KEYS = ("sequenceStoreId", "roleArn", "clientToken")
# Service model TagMap: keys of 1 to 128 characters, values of 0 to 256; AWS reserves the "aws:" prefix.
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256

# What each format calls a field, so that a message points at what the user wrote.
_COLUMN_NAMES = {
    CSV: {name: name for name in (*CSV_COLUMNS, "tags")},
    JSON: {
        **{f: key for key, f in JSON_KEYS.items() if f != "sources"},
        "read1": "sourceFiles.source1",
        "read2": "sourceFiles.source2",
    },
}


def column_name(manifest_format: str, field_name: str) -> str:
    """The CSV column or JSON key that holds ``field_name`` (``read1``/``read2`` for the sources)."""
    return _COLUMN_NAMES.get(manifest_format, _COLUMN_NAMES[CSV]).get(field_name, field_name)


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong with a manifest: where (row, CSV line, column) and what, with the fix."""

    message: str
    row: int | None = None
    column: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        return self.describe()

    def describe(self, sample: str | None = None) -> str:
        """The problem with where it is: ``row 4 (line 5, sample S4), read1: ...``, naming the row's sample when
        known."""
        where = []
        if self.row is not None:
            details = [f"line {self.line}"] if self.line is not None else []
            details += [f"sample {sample}"] if sample else []
            where.append(f"row {self.row}" + (f" ({', '.join(details)})" if details else ""))
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.column:
            where.append(self.column)
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ManifestError(OmicsInputError):
    """Everything wrong with a manifest, found before anything was created; never retried (no retry changes it).

    :param manifest: the manifest's path or URI, for the message.
    :param problems: every problem found; the message lists the first :data:`MAX_LISTED_PROBLEMS`.
    :param manifest_format: ``csv`` or ``json`` when known.
    :param samples: row -> the sample it names (its sample id as written), for the message.
    """

    def __init__(
        self,
        manifest: str,
        problems: Iterable[ManifestProblem],
        manifest_format: str | None = None,
        samples: Mapping[int, str] | None = None,
    ) -> None:
        # Stable: a row's problems stay in column order; problems of the whole manifest come first.
        self.problems = sorted(problems, key=lambda p: (p.row is not None, p.row or 0))
        self.manifest = manifest
        self.manifest_format = manifest_format
        self.samples = dict(samples or {})
        super().__init__(format_problems(manifest, self.problems, manifest_format, self.samples))

    def __reduce__(self) -> tuple[Any, ...]:
        # The default would call the class with the message alone; a pickled error (a subprocess, a result
        # backend) must come back with its problems.
        return (type(self), (self.manifest, self.problems, self.manifest_format, self.samples))


def format_problems(
    manifest: str,
    problems: Sequence[ManifestProblem],
    manifest_format: str | None = None,
    samples: Mapping[int, str] | None = None,
) -> str:
    """The message of a :class:`ManifestError`: a short headline (what and how many; the first line of the
    failure a log view shows), then the manifest and one problem a line (each naming its row's sample), capped."""
    title = f"Manifest {manifest}" + (f" ({FORMAT_NAMES[manifest_format]})" if manifest_format else "")
    if len(problems) == 1 and problems[0].row is None:
        return f"{title}: {problems[0]}"
    samples = samples or {}
    rows = len({p.row for p in problems if p.row is not None})
    counted = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}" + (
        f" in {rows} row{'s' if rows != 1 else ''}" if rows else ""
    )
    lines = [
        f"The manifest has {counted}; nothing was uploaded.",
        f"  {title}: fix it and trigger the run again.",
    ]
    lines.extend(
        f"  {problem.describe(samples.get(problem.row) if problem.row is not None else None)}"
        for problem in problems[:MAX_LISTED_PROBLEMS]
    )
    if len(problems) > MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more")
    return "\n".join(lines)


def _refuse(manifest: str, message: str, manifest_format: str | None = None) -> NoReturn:
    raise ManifestError(manifest, [ManifestProblem(message)], manifest_format)


@dataclass
class Manifest:
    """A manifest as :func:`read_manifest` read it.

    :param uri: the path or URI as given.
    :param location: the real path of the file that was read, or the S3 URI.
    :param format: ``csv`` or ``json``.
    :param rows: its read sets, checked, with the run's defaults applied.
    :param fingerprint: the version that was read (``Fingerprint.to_dict()``).
    """

    uri: str
    location: str
    format: str
    rows: list[ManifestRow]
    fingerprint: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "location": self.location,
            "format": self.format,
            "rows": [row.to_dict() for row in self.rows],
            "fingerprint": dict(self.fingerprint),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            uri=data["uri"],
            location=data.get("location") or data["uri"],
            format=data["format"],
            rows=[ManifestRow.from_dict(row) for row in data.get("rows") or []],
            fingerprint=dict(data.get("fingerprint") or {}),
        )


# -- reading ---------------------------------------------------------------------------------------------------

# Leading bytes of files that are given as a manifest by mistake: what they are, and what to do.
_GIVE_A_MANIFEST = "give the CSV or JSON manifest that lists the run's files"
_BINARY_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed (a .fastq.gz or a BAM?)", _GIVE_A_MANIFEST),
    (b"CRAM", "a CRAM file", _GIVE_A_MANIFEST),
    (b"BAM\x01", "an uncompressed BAM file", _GIVE_A_MANIFEST),
    (b"PK\x03\x04", "a ZIP file (an Excel workbook?)", "save the sheet as 'CSV UTF-8'"),
    (b"\xff\xfe", "UTF-16 text", "save it as UTF-8 ('CSV UTF-8' in a spreadsheet)"),
    (b"\xfe\xff", "UTF-16 text", "save it as UTF-8 ('CSV UTF-8' in a spreadsheet)"),
)


def decode_manifest(data: bytes, *, source_name: str) -> str:
    """The manifest's text; a ManifestError for bytes that are no text manifest (compressed, binary, not UTF-8)."""
    for magic, what, fix in _BINARY_MAGIC:
        if data.startswith(magic):
            _refuse(source_name, f"is {what}, not a manifest: {fix}.")
    if b"\x00" in data[:65536]:
        _refuse(source_name, "holds binary data, not a manifest. Give a CSV or JSON manifest (UTF-8 text).")
    try:
        # utf-8-sig: spreadsheet programs start a "CSV UTF-8" export with a byte order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        _refuse(
            source_name,
            f"is not UTF-8 text (byte {err.start}, line {line}). Save it as UTF-8 ('CSV UTF-8' in a spreadsheet).",
        )


def read_manifest(
    uri: str,
    *,
    s3_client_factory: Callable[[], Any] | None = None,
    allowed_local_roots: str | Sequence[str] | None = None,
    allowed_s3_prefixes: str | Sequence[str] | None = None,
    default_file_type: str | None = None,
    default_reference_arn: str | None = None,
    max_bytes: int = MAX_MANIFEST_BYTES,
) -> Manifest:
    """Load a manifest from a local path, ``file://`` or ``s3://`` and :func:`parse_manifest` it.

    The manifest is a staged file like any other: the same allow-lists and never-read locations apply, so a
    manifest path cannot be used to read files a staged source could not. It is read only up to ``max_bytes``.

    :param uri: the manifest's path or URI.
    :param s3_client_factory: returns the S3 client that reads an ``s3://`` manifest.
    :param allowed_local_roots: the operator's ``allowed_local_roots`` (narrowing ``[omics] allowed_local_roots``).
    :param allowed_s3_prefixes: the operator's ``allowed_s3_prefixes`` (narrowing ``[omics] allowed_s3_prefixes``).
    :param default_file_type: fills empty file type cells.
    :param default_reference_arn: fills empty reference cells of BAM and CRAM rows.
    :param max_bytes: a larger file is refused unread.
    :raises ManifestError: the manifest cannot be read or has problems; every problem is listed.
    """
    roots, prefixes = allow_lists(allowed_local_roots, allowed_s3_prefixes)
    loaded = _load(uri, lambda: parse_source(uri, s3_client_factory), roots, prefixes, max_bytes)
    rows = parse_manifest(
        loaded.text,
        source_name=loaded.uri,
        default_file_type=default_file_type,
        default_reference_arn=default_reference_arn,
    )
    return loaded.manifest(rows)


def validate_manifest(
    uri: str | Sequence[Mapping[str, Any]],
    *,
    source_factory: Callable[[str], StagedSource],
    allowed_local_roots: str | Sequence[str] | None = None,
    allowed_s3_prefixes: str | Sequence[str] | None = None,
    part_size: int | str = MAX_PART_SIZE,
    default_file_type: str | None = None,
    default_reference_arn: str | None = None,
    max_bytes: int = MAX_MANIFEST_BYTES,
) -> tuple[Manifest, list[PlannedSample]]:
    """Everything a run checks before anything exists on the service, with one failure that lists it all.

    :func:`read_manifest` and :func:`check_manifest_sources` in one: the manifest's own problems and its staged
    sources' problems (missing, outside the allow-lists, too many parts, one file in two rows) are reported
    together, the sources of a row whose metadata is wrong included.

    :param uri: the manifest's path or URI; or the manifest itself, inline: a list of read sets in the JSON
        manifest's shape (``[{"sampleId": ..., "sourceFiles": {"source1": ...}, ...}]``, see :func:`inline_manifest`),
        checked exactly as a JSON file is.
    :param source_factory: a path or URI -> its reader (``OmicsHook.staged_source``); reads the manifest too.
    :param allowed_local_roots: the operator's ``allowed_local_roots`` (narrowing ``[omics] allowed_local_roots``).
    :param allowed_s3_prefixes: the operator's ``allowed_s3_prefixes`` (narrowing ``[omics] allowed_s3_prefixes``).
    :param part_size: bytes per part, at most 100 MiB.
    :param default_file_type: fills empty file type cells.
    :param default_reference_arn: fills empty reference cells of BAM and CRAM rows.
    :param max_bytes: a larger manifest is refused unread.
    :returns: the manifest, and one PlannedSample per row in the manifest's order.
    :raises ManifestError: every problem, each with its row (and CSV line) and column.
    :raises OmicsInputError: a part size or allow-list the service or the settings refuse.
    """
    part_size = _checked_part_size(part_size)
    roots, prefixes = allow_lists(allowed_local_roots, allowed_s3_prefixes)
    if isinstance(uri, str):
        loaded = _load(uri, lambda: source_factory(uri), roots, prefixes, max_bytes)
    else:
        loaded = _inline(uri, max_bytes)
    parsed = _parse(loaded.text, loaded.uri, default_file_type, default_reference_arn)
    planned_sources, source_problems = _stat_sources(parsed.sources, source_factory, roots, prefixes, part_size)
    problems = parsed.problems + source_problems
    if problems:
        raise ManifestError(loaded.uri, problems, parsed.format, parsed.samples)
    by_row = dict(zip((entry.row for entry in parsed.sources), planned_sources, strict=True))
    planned = [PlannedSample(row=row, sources=by_row[row.row]) for row in parsed.rows]
    parsed.log(loaded.uri)
    _log_planned(loaded.uri, planned, part_size)
    return loaded.manifest(parsed.rows), planned


@dataclass
class _Loaded:
    uri: str
    location: str
    text: str
    fingerprint: dict[str, Any]

    def manifest(self, rows: list[ManifestRow]) -> Manifest:
        manifest_format = detect_format(self.text, source_name=self.uri)
        return Manifest(self.uri, self.location, manifest_format, rows, self.fingerprint)


# How an inline manifest is named in messages and logs; it has no location (no summary CSV goes next to it).
INLINE_MANIFEST = "(inline)"


def inline_manifest(
    *,
    sources: Sequence[str],
    file_type: str,
    name: str,
    subject_id: str,
    sample_id: str,
    reference_arn: str | None = None,
    generated_from: str | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """A one-read-set manifest, inline, in the JSON manifest's shape: what :func:`validate_manifest` takes instead
    of a location. Values may be templates (rendered in the plan task before they are checked); empty optional
    values are left out as in a manifest's empty cell."""
    if len(sources) > len(JSON_SOURCE_KEYS):
        raise OmicsInputError(f"sources: {len(sources)} files given; a read set has one or two (read 1, read 2).")
    files = {key: uri for key, uri in zip(JSON_SOURCE_KEYS, sources, strict=False) if uri}
    item: dict[str, Any] = {
        "sourceFiles": files,
        "sourceFileType": file_type,
        "subjectId": subject_id,
        "sampleId": sample_id,
        "name": name,
        "referenceArn": reference_arn,
        "generatedFrom": generated_from,
        "description": description,
        "tags": dict(tags) if tags else None,
    }
    return [{key: value for key, value in item.items() if value not in (None, "")}]


def _inline(rows: Sequence[Mapping[str, Any]], max_bytes: int) -> _Loaded:
    if not isinstance(rows, (list, tuple)):
        _refuse(
            repr(rows)[:80],
            "is neither a manifest's path or URI nor a list of read sets: give the location of the CSV or JSON "
            "manifest, or the read sets inline.",
        )
    try:
        text = json.dumps(list(rows))
    except (TypeError, ValueError) as err:
        _refuse(INLINE_MANIFEST, f"is not JSON data ({err}): give strings, lists and objects only.", JSON)
    if len(text) > max_bytes:
        _refuse(INLINE_MANIFEST, f"is {len(text)} bytes as JSON, above the {max_bytes}-byte limit of a manifest.")
    return _Loaded(INLINE_MANIFEST, "", text, {"sha256": hashlib.sha256(text.encode()).hexdigest()})


def _load(
    uri: str, open_source: Callable[[], StagedSource], roots: Sequence[str], prefixes: Sequence[str], max_bytes: int
) -> _Loaded:
    shown = uri if isinstance(uri, str) else repr(uri)
    try:
        source, fingerprint = stage_source(open_source, roots, prefixes)
        if fingerprint.size > max_bytes:
            _refuse(
                shown,
                f"is {fingerprint.size} bytes, above the {max_bytes}-byte limit of a manifest: is it a sequencing "
                "file? Give the CSV or JSON manifest that lists the run's files.",
            )
        with source.open_stream(fingerprint) as stream:
            data = _read_exactly(stream, fingerprint.size)
    except SourceError as err:
        _refuse(shown, f"cannot be read: {err}")
    return _Loaded(shown, source.location, decode_manifest(data, source_name=shown), fingerprint.to_dict())


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    # A ranged GET's body may return fewer bytes than asked for in one read.
    chunks = []
    while size > 0:
        chunk = stream.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


# -- parsing ---------------------------------------------------------------------------------------------------


def detect_format(text: str, *, source_name: str = "") -> str:
    """``json`` for a ``.json`` file or text that starts as JSON does (``[`` or ``{``); ``csv`` otherwise.

    No CSV header can start with a bracket, so the content alone decides; the extension makes a broken JSON
    file get JSON's error message rather than a CSV one.
    """
    if source_name.lower().endswith(".json") or text.lstrip("\ufeff \t\r\n")[:1] in ("[", "{"):
        return JSON
    return CSV


@dataclass
class _Record:
    """One data row as written, before its checks: field name -> value (CSV: stripped text; JSON: as parsed)."""

    row: int
    line: int | None
    manifest_format: str
    values: dict[str, Any]
    # Required fields that the CSV header lacks: reported once for the header, not again in every row.
    absent: frozenset[str] = frozenset()


@dataclass
class _Defaults:
    file_type: str | None
    reference_arn: str | None


def parse_manifest(
    text: str,
    *,
    source_name: str,
    default_file_type: str | None = None,
    default_reference_arn: str | None = None,
) -> list[ManifestRow]:
    """Parse and check a manifest's text (CSV with a header, or StartReadSetImportJob ``sources`` JSON).

    Checks each row as the single read set path checks its parameters (file type, a reference for BAM and CRAM,
    two sources only for FASTQ, the service's text limits, what a path or S3 URI may be), and the rows together:
    no two rows with the same name and sample, no file in two rows (as written; :func:`check_manifest_sources`
    compares the opened files). No I/O.

    :param text: the manifest's content.
    :param source_name: its path or URI, for messages; a ``.json`` name is parsed as JSON.
    :param default_file_type: fills empty file type cells.
    :param default_reference_arn: fills empty reference cells of BAM and CRAM rows only: FASTQ and uBAM reads
        are unaligned, and linking them to the run's reference would record an alignment that never happened.
    :raises ManifestError: every problem found, each with its row (and CSV line) and column.
    """
    parsed = _parse(text, source_name, default_file_type, default_reference_arn)
    if parsed.problems:
        raise ManifestError(source_name, parsed.problems, parsed.format, parsed.samples)
    parsed.log(source_name)
    return parsed.rows


@dataclass(frozen=True)
class _SourceEntry:
    """The sources of one row whose paths and URIs are well-formed, whatever else the row got wrong."""

    row: int
    line: int | None
    manifest_format: str
    sources: list[str]


@dataclass
class _Parsed:
    format: str
    shape: str
    rows: list[ManifestRow]
    sources: list[_SourceEntry]
    problems: list[ManifestProblem]
    # row -> the sample id as written, for messages
    samples: dict[int, str] = field(default_factory=dict)

    def log(self, source_name: str) -> None:
        log.info("Manifest %s: %s, %d read set(s).", source_name, self.shape, len(self.rows))


def _parse(text: str, source_name: str, default_file_type: str | None, default_reference_arn: str | None) -> _Parsed:
    """Every problem of the manifest's text, and what could be read; raises only for text that is no manifest."""
    text = text.lstrip("\ufeff")
    if not text.strip():
        _refuse(source_name, "is empty. Give a CSV manifest with a header line, or a JSON list of read sets.")
    if "\x00" in text:
        _refuse(source_name, "holds binary data, not a manifest. Give a CSV or JSON manifest (UTF-8 text).")
    lines = text.lstrip().splitlines()
    if lines[0].startswith("@") and len(lines) > 2 and lines[2].startswith("+"):
        _refuse(source_name, "is a FASTQ file, not a manifest. Give the CSV or JSON manifest that lists the files.")

    manifest_format = detect_format(text, source_name=source_name)
    problems: list[ManifestProblem] = []
    defaults = _check_defaults(default_file_type, default_reference_arn, problems)
    if manifest_format == JSON:
        records, shape = _json_records(text, source_name, problems)
    else:
        records, shape = _csv_records(text, source_name, problems), "CSV with a header"
    rows: list[ManifestRow] = []
    sources: list[_SourceEntry] = []
    for record in records:
        row, row_sources = _check_record(record, defaults, problems)
        if row is not None:
            rows.append(row)
        if row_sources:
            sources.append(_SourceEntry(record.row, record.line, record.manifest_format, row_sources))
    _check_duplicates(records, problems)
    samples = {record.row: _shown_sample(record.values.get("sample_id")) for record in records}
    return _Parsed(manifest_format, shape, rows, sources, problems, samples)


def _shown_sample(value: Any) -> str:
    """A row's sample id as a message shows it: cut, and quoted with escapes when it holds what a terminal or a log
    view would act on (the cell may be what is wrong)."""
    text = str(value or "").strip()[:MAX_SHOWN_SAMPLE]
    return text if text.isprintable() else repr(text)


def _check_defaults(file_type: str | None, reference_arn: str | None, problems: list[ManifestProblem]) -> _Defaults:
    checked = _Defaults(None, None)
    if file_type not in (None, ""):
        try:
            checked.file_type = check_file_type(file_type.strip() if isinstance(file_type, str) else file_type)
        except OmicsInputError as err:
            problems.append(ManifestProblem(str(err), column="default file type"))
    if reference_arn not in (None, ""):
        try:
            # Only the ARN's form: whether a row needs it depends on the row's type.
            checked.reference_arn = check_reference("", reference_arn)
        except OmicsInputError as err:
            problems.append(ManifestProblem(str(err), column="default reference"))
    return checked


def _csv_records(text: str, source_name: str, problems: list[ManifestProblem]) -> list[_Record]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    columns: list[str | None] | None = None
    absent: frozenset[str] = frozenset()
    records: list[_Record] = []
    counted = 0
    end = 0
    try:
        for cells in reader:
            # A quoted cell may span lines: a record starts on the line after the previous one ended.
            start, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if columns is None:
                columns, absent = _csv_header(cells, start, source_name, problems)
                continue
            counted += 1
            if counted > MAX_MANIFEST_ROWS:
                # Only counted: the manifest is refused below, before any row is checked.
                continue
            row = len(records) + 1
            extra = [cell for cell in cells[len(columns) :] if cell.strip()]
            if extra:
                problems.append(
                    ManifestProblem(
                        f"has {len(cells)} cells, the header {len(columns)} columns: quote a cell that holds a comma.",
                        row=row,
                        line=start,
                    )
                )
            values: dict[str, Any] = {}
            for column, cell in zip(columns, cells, strict=False):
                if column:
                    values[column] = cell.strip()
                elif column == "" and cell.strip():
                    problems.append(
                        ManifestProblem(f"{cell.strip()!r} is in a column with no name.", row=row, line=start)
                    )
            records.append(_Record(row, start, CSV, values, absent))
    except csv.Error as err:
        problems.append(ManifestProblem(f"is not valid CSV: {err}.", line=reader.line_num))
    _check_row_count(counted, source_name, CSV)
    if columns is not None and not records and not problems:
        _refuse(source_name, "has a header but no rows: list one read set per line.", CSV)
    return records


def _csv_header(
    cells: list[str], line: int, source_name: str, problems: list[ManifestProblem]
) -> tuple[list[str | None], frozenset[str]]:
    """Each cell's field (``""`` for an unnamed column, None for one refused), and the required fields missing."""
    names = [cell.strip().lower() for cell in cells]
    if not any(name in CSV_COLUMNS for name in names):
        shown = ",".join(cells)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        separated = next((what for sep, what in (("\t", "tabs"), (";", "semicolons")) if sep in shown), None)
        why = (
            f"its header line is separated by {separated}; save it as comma-separated CSV"
            if separated
            else "its first line must be the header"
        )
        _refuse(
            source_name,
            f"has no header: line {line} ({shown!r}) names none of the columns {', '.join(CSV_COLUMNS)}; {why}.",
            CSV,
        )
    columns: list[str | None] = []
    for cell, name in zip(cells, names, strict=True):
        if name and name not in CSV_COLUMNS:
            columns.append(None)
        elif name and name in columns:
            problems.append(ManifestProblem(f"column {cell.strip()!r} appears twice.", column="header", line=line))
            columns.append(None)
        else:
            columns.append(name)
    unknown = [cell.strip() for cell, name in zip(cells, names, strict=True) if name and name not in CSV_COLUMNS]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        problems.append(
            ManifestProblem(
                f"unknown column{'s' if len(unknown) > 1 else ''} {listed}: a manifest has the columns "
                f"{', '.join(CSV_COLUMNS)}. Remove or rename {'them' if len(unknown) > 1 else 'it'}.",
                column="header",
                line=line,
            )
        )
    missing = [name for name in REQUIRED_CSV_COLUMNS if name not in columns]
    for name in missing:
        problems.append(ManifestProblem(f"no column {name!r}: every row needs one.", column="header", line=line))
    return columns, frozenset(missing)


def _check_row_count(count: int, source_name: str, manifest_format: str) -> None:
    if count > MAX_MANIFEST_ROWS:
        _refuse(
            source_name,
            f"has {count:,} rows (read sets), at most {MAX_MANIFEST_ROWS:,} per run: split the manifest into "
            "several runs.",
            manifest_format,
        )


# What a JSON text's nesting is read from: its brackets, as parentheses (an empty array or object is then "()"
# whatever its kind), and its quotes; every other byte is dropped.
_AS_PARENTHESES = bytes.maketrans(b"[{]}", b"(())")
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_QUOTED = re.compile(rb'"[^"]*"')


def json_depth(text: str, at_most: int = MAX_MANIFEST_DEPTH) -> int:
    """How deep the arrays and objects of a JSON text nest (``[]`` is 1, ``{"a": [1]}`` 2), up to ``at_most + 1``
    (any deeper text gives ``at_most + 1``), read off the text without parsing it.

    No recursion, and C string operations only: at most ``at_most + 1`` passes over the text's brackets, each of
    which removes the empty pairs and so takes one level off every nesting; a text nested millions deep costs no
    more than a flat one. Brackets inside strings do not count; an unterminated string ends the count (what
    follows is inside it), and a bracket never closed counts as a level around all that follows it (the parser
    descends into it).
    """
    # Escaped backslashes and quotes first: every quote left opens or closes a string.
    data = text.encode("utf-8", "surrogatepass").replace(b"\\\\", b"").replace(b'\\"', b"")
    # Two adjacent quotes (an empty string, or the end of one and the start of the next) change no bracket's side:
    # dropped at C speed, they leave only the few strings that hold brackets to the regular expression.
    data = data.translate(_AS_PARENTHESES, _NOT_STRUCTURE).replace(b'""', b"")
    brackets = _QUOTED.sub(b"", data).split(b'"', 1)[0]
    if b"(" * (at_most + 1) in brackets:
        return at_most + 1
    depth = 0
    while depth <= at_most and b"()" in brackets:
        brackets = brackets.replace(b"()", b"")
        depth += 1
    return min(at_most + 1, depth + brackets.count(b"("))


def _too_deep(what: str) -> str:
    return (
        f"{what}: a manifest nests at most {MAX_MANIFEST_DEPTH} (a StartReadSetImportJob request, "
        '{"sources": [{"sourceFiles": {"source1": ...}}]}, nests 4). Give a list of read sets or an import request '
        "whose values are text (tags: an object of text)."
    )


def _json_records(text: str, source_name: str, problems: list[ManifestProblem]) -> tuple[list[_Record], str]:
    text = text.lstrip("\ufeff")
    if json_depth(text) > MAX_MANIFEST_DEPTH:
        _refuse(source_name, _too_deep(f"nests arrays and objects more than {MAX_MANIFEST_DEPTH} levels deep"), JSON)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        _refuse(source_name, f"is not valid JSON: {err.msg} (line {err.lineno} column {err.colno}).", JSON)
    except RecursionError:
        # Not reached past json_depth; kept so that no nesting can ever surface as a RecursionError (retried).
        _refuse(source_name, _too_deep("nests too deep for the JSON parser"), JSON)
    shape = "JSON list of StartReadSetImportJob sources"
    if isinstance(data, dict):
        if "sources" not in data:
            _refuse(
                source_name,
                "is a JSON object without 'sources': give a list of read sets ([{\"sourceFiles\": ...}, ...]) or a "
                'StartReadSetImportJob request ({"sources": [...]}).',
                JSON,
            )
        unknown = sorted(set(data) - {"sources", *IMPORT_REQUEST_KEYS})
        if unknown:
            problems.append(
                ManifestProblem(
                    f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} next to 'sources' "
                    f"(an import request has {', '.join(repr(k) for k in ('sources', *IMPORT_REQUEST_KEYS))}).",
                    column="top level",
                )
            )
        if data.get("sequenceStoreId"):
            log.info("Manifest %s: its sequenceStoreId is not used; the run's sequence store is.", source_name)
        data = data["sources"]
        shape = "JSON StartReadSetImportJob request"
    if not isinstance(data, list):
        _refuse(source_name, f"is JSON but not a list of read sets (it is a {type(data).__name__}).", JSON)
    if not data:
        _refuse(source_name, "lists no read sets.", JSON)
    _check_row_count(len(data), source_name, JSON)
    records = []
    for row, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            problems.append(ManifestProblem(f"is a {type(item).__name__}, not a read set object.", row=row))
            continue
        unknown = [key for key in item if key not in JSON_KEYS]
        if unknown:
            problems.append(
                ManifestProblem(
                    f"unknown key{'s' if len(unknown) > 1 else ''}: a read set has the keys {', '.join(JSON_KEYS)}.",
                    row=row,
                    column=", ".join(map(repr, unknown)),
                )
            )
        values = {JSON_KEYS[key]: _stripped(value) for key, value in item.items() if key in JSON_KEYS}
        source_files = values.pop("sources", None)
        if isinstance(source_files, dict):
            unknown = [key for key in source_files if key not in JSON_SOURCE_KEYS]
            if unknown:
                problems.append(
                    ManifestProblem(
                        f"unknown key{'s' if len(unknown) > 1 else ''} in sourceFiles: it has source1 and source2.",
                        row=row,
                        column=", ".join(f"sourceFiles.{key}" for key in unknown),
                    )
                )
            values["read1"] = _stripped(source_files.get("source1"))
            values["read2"] = _stripped(source_files.get("source2"))
        elif source_files is not None:
            problems.append(
                ManifestProblem(
                    'must be an object: {"source1": "s3://...", "source2": "s3://..."}.', row=row, column="sourceFiles"
                )
            )
            values["read1"] = _INVALID
        records.append(_Record(row, None, JSON, values))
    return records, shape


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


# A value already reported as malformed: its field's own check is skipped.
_INVALID = object()


def _check_record(
    record: _Record, defaults: _Defaults, problems: list[ManifestProblem]
) -> tuple[ManifestRow | None, list[str]]:
    """The record as a ManifestRow (None when any of its fields has a problem; each one is added), and its
    sources when they are well-formed paths or URIs, for the staged-source checks."""
    before = len(problems)
    values = record.values

    def problem(field_name: str, message: str) -> None:
        column = column_name(record.manifest_format, field_name)
        problems.append(ManifestProblem(message, row=record.row, column=column, line=record.line))

    def checked(field_name: str, check: Callable[..., Any], *args: Any) -> Any:
        try:
            return check(*args)
        except OmicsInputError as err:
            problem(field_name, str(err))
            return _INVALID

    file_type: Any = values.get("file_type") or defaults.file_type
    if file_type in (None, ""):
        problem("file_type", "is empty and the run has no default file type: give FASTQ, BAM, CRAM or UBAM.")
        file_type = _INVALID
    else:
        file_type = checked("file_type", check_file_type, file_type)

    reference: Any = values.get("reference_arn")
    if not reference and file_type in FILE_TYPES_NEEDING_REFERENCE:
        reference = defaults.reference_arn
    # With an unknown type, only the ARN's form can be checked.
    reference = checked("reference_arn", check_reference, file_type if isinstance(file_type, str) else "", reference)

    text = {
        name: checked(name, check_text, name, values.get(name))
        for name in ("name", "subject_id", "sample_id", "generated_from", "description")
        if name not in record.absent
    }

    sources = _check_row_sources(record, file_type, problem)
    tags = _check_tags(values.get("tags"), problem)

    if len(problems) > before or record.absent:
        return None, sources
    row = ManifestRow(
        row=record.row,
        sample_id=text["sample_id"],
        subject_id=text["subject_id"],
        name=text["name"],
        sources=sources,
        file_type=file_type,
        reference_arn=reference,
        generated_from=text["generated_from"],
        description=text["description"],
        tags=tags,
        line=record.line,
        manifest_format=record.manifest_format,
    )
    return row, sources


def _check_row_sources(record: _Record, file_type: Any, problem: Callable[[str, str], None]) -> list[str]:
    """The row's sources, or [] when one of them is not a well-formed path or URI (the problem is added)."""
    read1, read2 = record.values.get("read1"), record.values.get("read2")
    if read1 is _INVALID or "read1" in record.absent:
        return []
    if read1 is None or (isinstance(read1, str) and not read1):
        problem("read1", "is empty: every read set needs its first (or only) file, a path or an s3:// URI.")
        return []
    try:
        sources = normalize_sources([read1, read2])
    except OmicsInputError as err:
        blank = not (isinstance(read1, str) and read1.strip())
        problem("read1" if blank else "read2", str(err))
        return []
    well_formed = True
    for index, uri in enumerate(sources):
        try:
            parse_source(uri, s3_client_factory=_no_client)
        except SourceError as err:
            problem(("read1", "read2")[index], str(err))
            well_formed = False
    if len(sources) == 2 and isinstance(file_type, str) and file_type != "FASTQ":
        problem(
            "read2",
            f"a {file_type} read set has one source: only paired FASTQ has a read 2. Remove read 2, or make the "
            "file type FASTQ.",
        )
    return sources if well_formed else []


def _no_client() -> Any:
    raise AssertionError("parsing a manifest makes no S3 call")


def _check_tags(tags: Any, problem: Callable[[str, str], None]) -> dict[str, str]:
    if tags in (None, {}):
        return {}
    if not isinstance(tags, dict):
        problem("tags", f"must be an object of text keys and values, got {type(tags).__name__}.")
        return {}
    for key, value in tags.items():
        if not isinstance(key, str):
            # JSON keys are always text; a mapping built in Python may hold others.
            problem(
                "tags", f"tag key {key!r} is a {type(key).__name__}: a key is text of 1 to {TAG_KEY_MAX} characters."
            )
            continue
        if not isinstance(value, str) or len(value) > TAG_VALUE_MAX:
            shown = repr(key) if len(key) <= 40 else repr(key[:40]) + "..."
            got = f"{len(value)} characters" if isinstance(value, str) else f"{type(value).__name__} {value!r:.40}"
            problem("tags", f"tag {shown}: its value must be text of at most {TAG_VALUE_MAX} characters, got {got}.")
        if not 1 <= len(key) <= TAG_KEY_MAX:
            problem("tags", f"tag key {key[:40]!r}: a key is 1 to {TAG_KEY_MAX} characters.")
        elif key.lower().startswith("aws:"):
            problem("tags", f"tag key {key!r}: the prefix 'aws:' is reserved by AWS.")
        elif key == REQUEST_TAG:
            problem("tags", f"tag key {key!r} is the provider's own: it identifies the upload's request.")
    return dict(tags)


def _source_key(uri: Any) -> tuple[str, ...] | None:
    """Two spellings of one file that name it identically once parsed (``file:///x`` and ``/x``, %-escapes)."""
    if not isinstance(uri, str) or not uri.strip():
        return None
    try:
        source = parse_source(uri.strip(), s3_client_factory=_no_client)
    except SourceError:
        return None
    if isinstance(source, S3Source):
        return ("s3", source.bucket, source.key)
    return ("local", str(source.uri))


def _check_duplicates(records: Sequence[_Record], problems: list[ManifestProblem]) -> None:
    """Rows that would be one read set (same name and sample), and files listed twice, as written."""
    samples: dict[tuple[str, str], _Record] = {}
    keys: dict[str, _Record] = {}
    files: dict[tuple[str, ...], tuple[_Record, str]] = {}
    for record in records:
        name, sample = record.values.get("name"), record.values.get("sample_id")
        if isinstance(name, str) and isinstance(sample, str) and name and sample:
            first = samples.setdefault((name, sample), record)
            if first is not record:
                problems.append(
                    ManifestProblem(
                        f"the same name and sample_id as row {first.row} ({name!r}, {sample!r}): the read sets of a "
                        "run are told apart, and found again on a resume, by name and sample. Give each its own name.",
                        row=record.row,
                        column=column_name(record.manifest_format, "name"),
                        line=record.line,
                    )
                )
            # A '/' in either part can make two different rows one sample of the run: one upload, one row lost.
            run_key = sample_key(sample, name)
            other = keys.setdefault(run_key, record)
            if first is record and other is not record:
                problems.append(
                    ManifestProblem(
                        f"sample_id {sample!r} with name {name!r} is the run's sample {run_key!r}, as row "
                        f"{other.row}'s sample_id {other.values['sample_id']!r} with name {other.values['name']!r} "
                        'is: a run keys its samples by "sample_id/name". Rename one of the two so that no two rows\' '
                        '"sample_id/name" are equal.',
                        row=record.row,
                        column=column_name(record.manifest_format, "name"),
                        line=record.line,
                    )
                )
        for field_name in ("read1", "read2"):
            uri = record.values.get(field_name)
            key = _source_key(uri)
            if key is None or not isinstance(uri, str):
                continue
            first_record, first_field = files.setdefault(key, (record, field_name))
            if first_record is record and first_field == field_name:
                continue
            if first_record is record:
                # normalize_sources already reports read 1 and read 2 spelled identically.
                if uri.strip() != str(record.values.get(first_field) or "").strip():
                    _same_file(record, field_name, uri, "this row's", first_field, problems)
            else:
                _same_file(record, field_name, uri, f"row {first_record.row}'s", first_field, problems)


def _same_file(
    record: _Record, field_name: str, uri: str, whose: str, other: str, problems: list[ManifestProblem]
) -> None:
    other_column = column_name(record.manifest_format, other)
    problems.append(
        ManifestProblem(
            f"{uri.strip()} is also {whose} {other_column}: one staged file belongs to one read set.",
            row=record.row,
            column=column_name(record.manifest_format, field_name),
            line=record.line,
        )
    )


# -- the staged sources ----------------------------------------------------------------------------------------


def import_job_rows(
    sources: str | Sequence[Mapping[str, Any]] | None,
    manifest: str | None,
    *,
    source_factory: Callable[[str], StagedSource],
    s3_client_factory: Callable[[], Any] | None = None,
    allowed_s3_prefixes: str | Sequence[str] | None = None,
    default_file_type: str | None = None,
    default_reference_arn: str | None = None,
) -> list[PlannedSample]:
    """The read sets of an import job, checked as a manifest's rows with their staged sources: every problem of
    every source in one failure. ``sources`` are the service's ``sources`` items (or their JSON text, as a form
    renders them); ``manifest`` instead, a manifest's path or URI. Every source must be an S3 object."""
    if isinstance(sources, str):
        try:
            sources = json.loads(sources) if sources.strip() else None
        except json.JSONDecodeError as err:
            raise OmicsInputError(f"sources is not JSON: {err}. Give a list of the service's sources items.") from None
        except RecursionError:
            raise OmicsInputError(
                "sources nests arrays or objects too deeply to be a list of the service's sources items."
            ) from None
    if bool(sources) == bool(manifest):
        raise OmicsInputError("Give either sources (the service's sources items) or manifest, not both.")
    defaults: dict[str, Any] = {
        "default_file_type": default_file_type or None,
        "default_reference_arn": default_reference_arn or None,
    }
    if manifest:
        rows = read_manifest(
            manifest, s3_client_factory=s3_client_factory, allowed_s3_prefixes=allowed_s3_prefixes, **defaults
        ).rows
        name = manifest
    else:
        name = "sources"
        try:
            text = json.dumps({"sources": list(sources or [])})
        except (RecursionError, ValueError, TypeError) as err:
            raise OmicsInputError(
                f"sources is not a list of the service's sources items ({type(err).__name__})."
            ) from None
        rows = parse_manifest(text, source_name="sources.json", **defaults)
    local = [
        f"row {row.row} ({row.sample_id}/{row.name}): {source}"
        for row in rows
        for source in row.sources
        if not source.startswith("s3://")
    ]
    if local:
        raise OmicsInputError(
            "An import job reads only S3 objects, and these are not: " + "; ".join(local) + ". Stage them on S3, "
            "or upload them directly (upload_read_set, upload_sequencing_run)."
        )
    return check_manifest_sources(
        rows, source_factory=source_factory, allowed_s3_prefixes=allowed_s3_prefixes, manifest_name=name
    )


def check_manifest_sources(
    rows: Sequence[ManifestRow],
    *,
    source_factory: Callable[[str], StagedSource],
    allowed_local_roots: str | Sequence[str] | None = None,
    allowed_s3_prefixes: str | Sequence[str] | None = None,
    part_size: int | str = MAX_PART_SIZE,
    manifest_name: str = "manifest",
) -> list[PlannedSample]:
    """Look at every staged source of a run without reading its content, as split does for one read set.

    Each source must exist, be a readable, regular, non-empty file (or S3 object) inside the allow-lists and
    outside the never-read locations, and fit in 10,000 parts of ``part_size``; no file may belong to two rows
    however it is spelled (the same opened file, :func:`~airflow_provider_omics.staging.sources.same_source`).
    One stat (or HeadObject) per source; no HealthOmics call.

    :param rows: the rows :func:`parse_manifest` returned.
    :param source_factory: a path or URI -> its reader; pass ``OmicsHook.staged_source``.
    :param allowed_local_roots: the operator's ``allowed_local_roots`` (narrowing ``[omics] allowed_local_roots``).
    :param allowed_s3_prefixes: the operator's ``allowed_s3_prefixes`` (narrowing ``[omics] allowed_s3_prefixes``).
    :param part_size: bytes per part, at most 100 MiB.
    :param manifest_name: the manifest's path or URI, for the message.
    :returns: one PlannedSample per row, in the manifest's order: per source (SOURCE1, SOURCE2) its URI, the
        location later tasks open, size, part count, part size and fingerprint.
    :raises ManifestError: every source that cannot be used, each with its row and column.
    :raises OmicsInputError: a part size or allow-list the service or the settings refuse.
    """
    part_size = _checked_part_size(part_size)
    roots, prefixes = allow_lists(allowed_local_roots, allowed_s3_prefixes)
    entries = [_SourceEntry(row.row, row.line, row.manifest_format, list(row.sources)) for row in rows]
    planned_sources, problems = _stat_sources(entries, source_factory, roots, prefixes, part_size)
    if problems:
        raise ManifestError(manifest_name, problems, samples={row.row: row.sample_id for row in rows})
    planned = [PlannedSample(row=row, sources=sources) for row, sources in zip(rows, planned_sources, strict=True)]
    _log_planned(manifest_name, planned, part_size)
    return planned


def _checked_part_size(part_size: int | str) -> int:
    value = as_int("part_size", part_size)
    try:
        check_part_size(value)
    except PartPlanError as err:
        raise OmicsInputError(str(err)) from None
    return value


def _stat_sources(
    entries: Sequence[_SourceEntry],
    source_factory: Callable[[str], StagedSource],
    roots: Sequence[str],
    prefixes: Sequence[str],
    part_size: int,
) -> tuple[list[dict[str, PlannedSource]], list[ManifestProblem]]:
    """Per entry, its planned sources (complete only when the problems are none), and every problem found."""
    problems: list[ManifestProblem] = []
    planned: list[dict[str, PlannedSource]] = []
    opened: dict[tuple[Any, ...], list[tuple[_SourceEntry, str, StagedSource, Fingerprint]]] = {}
    for entry in entries:
        sources: dict[str, PlannedSource] = {}
        planned.append(sources)
        for part_source, field_name, uri in zip(PART_SOURCES, ("read1", "read2"), entry.sources, strict=False):
            column = column_name(entry.manifest_format, field_name)
            try:
                source, fingerprint, planned_source = plan_source(
                    functools.partial(source_factory, uri), uri, part_source, part_size, roots, prefixes
                )
            except (SourceError, PartPlanError) as err:
                problems.append(ManifestProblem(str(err), row=entry.row, column=column, line=entry.line))
                continue
            same_identity = opened.setdefault(_identity(source, fingerprint), [])
            for other_entry, other_field, other, other_fingerprint in same_identity:
                # The same spelling was reported with the manifest's text already.
                if _source_key(other.uri) == _source_key(uri):
                    continue
                if same_source(other, other_fingerprint, source, fingerprint):
                    whose = "this row's" if other_entry is entry else f"row {other_entry.row}'s"
                    problems.append(
                        ManifestProblem(
                            f"{uri} is the same file as {whose} {column_name(entry.manifest_format, other_field)} "
                            f"({other.uri}): one staged file belongs to one read set.",
                            row=entry.row,
                            column=column,
                            line=entry.line,
                        )
                    )
                    break
            same_identity.append((entry, field_name, source, fingerprint))
            sources[part_source] = planned_source
    return planned, problems


def _log_planned(manifest_name: str, planned: Sequence[PlannedSample], part_size: int) -> None:
    sources = [source for sample in planned for source in sample.sources.values()]
    log.info(
        "Manifest %s: %d read set(s), %d source(s), %d bytes in %d parts of %d bytes.",
        manifest_name,
        len(planned),
        len(sources),
        sum(source["size"] for source in sources),
        sum(source["parts"] for source in sources),
        part_size,
    )


def _identity(source: StagedSource, fingerprint: Fingerprint) -> tuple[Any, ...]:
    """A key under which any two sources that :func:`same_source` could call one file meet: a run's thousand
    sources are compared within these groups, not each with every other."""
    if isinstance(source, LocalSource):
        if fingerprint.device is not None and fingerprint.inode is not None:
            return ("inode", fingerprint.device, fingerprint.inode)
        return ("path", source.location)
    if isinstance(source, S3Source):
        return ("s3", source.bucket, source.key)
    return ("uri", source.uri)
