"""Complete reconciles parts missing from XCom with the service; abort acts only when nothing completed."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_omics.operators.omics import (
    OmicsAbortReadSetUploadOperator,
    OmicsCompleteReadSetUploadOperator,
)
from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.samples import fastq_records
from tests.helpers import stored_bytes, wait_active

PART = 2048


def start_upload(emulator: OmicsEmulator, store_id: str, data: bytes, upload_parts: int) -> tuple[str, list[dict]]:
    """An upload with its first ``upload_parts`` parts sent; returns the id and each sent part's XCom entry."""
    client = emulator.client()
    upload_id = client.create_multipart_read_set_upload(
        sequenceStoreId=store_id, sourceFileType="FASTQ", name="c", subjectId="s", sampleId="x"
    )["uploadId"]
    sent = []
    for n in range(1, upload_parts + 1):
        checksum = client.upload_read_set_part(
            sequenceStoreId=store_id,
            uploadId=upload_id,
            partSource="SOURCE1",
            partNumber=n,
            payload=data[(n - 1) * PART : n * PART],
        )["checksum"]
        sent.append({"partNumber": n, "partSource": "SOURCE1", "checksum": checksum})
    return upload_id, sent


def complete(store_id: str, upload_id: str, parts: Any, expected: dict[str, int]) -> str:
    return OmicsCompleteReadSetUploadOperator(
        task_id="complete",
        sequence_store_id=store_id,
        upload_id=upload_id,
        parts=parts,
        expected_parts=expected,
        aws_conn_id="omics_test",
    ).execute({})  # type: ignore[arg-type]


def abort(store_id: str, upload_id: str | None, read_set_id: str | None = None) -> bool:
    return OmicsAbortReadSetUploadOperator(
        task_id="abort",
        sequence_store_id=store_id,
        upload_id=upload_id,
        read_set_id=read_set_id,
        aws_conn_id="omics_test",
    ).execute({})  # type: ignore[arg-type]


def test_parts_missing_from_xcom_are_taken_from_the_service(
    emulator: OmicsEmulator, omics_conn: str, store_id: str
) -> None:
    data = fastq_records(60, seed=41)
    total = -(-len(data) // PART)
    upload_id, sent = start_upload(emulator, store_id, data, total)
    # One mapped task's XCom is lost (None), another pushed only part of its batch.
    xcoms = [sent[:2], None, sent[3:4]]

    read_set_id = complete(store_id, upload_id, xcoms, {"SOURCE1": total})

    client = emulator.client()
    assert wait_active(client, store_id, read_set_id)["status"] == "ACTIVE"
    assert stored_bytes(client, store_id, read_set_id, "SOURCE1") == data


def test_a_part_nobody_uploaded_fails_complete_naming_it(
    emulator: OmicsEmulator, omics_conn: str, store_id: str
) -> None:
    data = fastq_records(60, seed=42)
    total = -(-len(data) // PART)
    upload_id, sent = start_upload(emulator, store_id, data, total - 1)

    with pytest.raises(AirflowFailException, match=rf"SOURCE1 is missing parts {total} of {total}"):
        complete(store_id, upload_id, [sent], {"SOURCE1": total})
    # Still in progress: aborting it is the teardown's job.
    assert abort(store_id, upload_id) is True
    assert emulator.client().list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"] == []


def test_abort_is_a_no_op_after_complete_and_for_an_upload_already_gone(
    emulator: OmicsEmulator, omics_conn: str, store_id: str
) -> None:
    data = fastq_records(10, seed=43)
    upload_id, sent = start_upload(emulator, store_id, data, -(-len(data) // PART))
    read_set_id = complete(store_id, upload_id, [sent], {"SOURCE1": len(sent)})

    assert abort(store_id, upload_id, read_set_id) is False  # completed: nothing to abort
    assert abort(store_id, upload_id) is False  # the service no longer knows it: not an error
    assert abort(store_id, None) is False  # create never ran
