"""A read set request: its fields once, the checks that need no service call, and finding what it made."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
)
from botocore.exceptions import ClientError, NoCredentialsError

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.readsets.identity import request_token
from airflow_provider_omics.utils.errors import OmicsInputError, error_code, service_errors, service_failure
from airflow_provider_omics.utils.inputs import (
    check_file_type,
    check_reference,
    check_store_id,
    check_text,
)
from airflow_provider_omics.utils.payloads import RunSample, UploadRecord


def only_read_set(found: Sequence[Mapping[str, Any]], token: str) -> str:
    """The one read set a request produced; several cannot be told apart, and that is said, not guessed."""
    if len(found) > 1:
        ids = ", ".join(str(read_set["id"]) for read_set in found)
        raise AirflowFailException(
            f"Read sets {ids} all carry the request token {token}: which one this run stored cannot be told. "
            "Keep one (delete the others) and clear the task."
        )
    return str(found[0]["id"])


def stored_read_set(
    hook: OmicsHook, record: UploadRecord | None, upload_id: str | None, aws_conn_id: str | None
) -> str | None:
    """The read set that the record's request produced (through ``upload_id`` when given), or None.

    Without a record (operators wired without ``upload_record``) there is nothing to look for by.
    """
    if record is None:
        return None
    with service_errors("Looking for the read set of this request", aws_conn_id):
        found = hook.find_read_sets(
            record.sequence_store_id,
            record.client_token,
            name=record.name,
            sample_id=record.sample_id,
            subject_id=record.subject_id,
            upload_id=upload_id,
            created_after=record.upload_created if upload_id == record.upload_id else None,
        )
    return only_read_set(found, record.client_token) if found else None


def check_store(hook: OmicsHook, store_id: str, aws_conn_id: str | None) -> dict[str, Any]:
    """GetSequenceStore, with the one clear message for a store that does not exist (or missing credentials)."""
    try:
        return hook.get_sequence_store(store_id)
    except ClientError as err:
        if error_code(err) in ("ResourceNotFoundException", "ValidationException"):
            raise OmicsInputError(
                f"Sequence store {store_id} does not exist in region {hook.conn_region_name} for connection "
                f"{aws_conn_id!r}. Check the id and the connection's region."
            ) from None
        raise service_failure(err, "GetSequenceStore", aws_conn_id) from None
    except NoCredentialsError:
        raise AirflowFailException(
            f"No AWS credentials were found for connection {aws_conn_id!r}: set its login/password, a role, or "
            "the workers' default credentials."
        ) from None


# The operator attributes that make a read set's request (those of create, and of the import path's operator).
REQUEST_FIELDS = (
    "sequence_store_id",
    "source_file_type",
    "reference_arn",
    "name",
    "subject_id",
    "sample_id",
    "generated_from",
    "description",
    "tags",
)


def check_request(
    *,
    sequence_store_id: Any,
    source_file_type: Any,
    reference_arn: Any,
    name: Any,
    subject_id: Any,
    sample_id: Any,
    generated_from: Any = None,
    description: Any = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every check of a create request that needs no service call; returns the request."""
    file_type = check_file_type(source_file_type)
    return {
        "sequenceStoreId": check_store_id(sequence_store_id),
        "sourceFileType": file_type,
        "referenceArn": check_reference(file_type, reference_arn),
        "name": check_text("name", name),
        "subjectId": check_text("subject_id", subject_id),
        "sampleId": check_text("sample_id", sample_id),
        "generatedFrom": check_text("generated_from", generated_from),
        "description": check_text("description", description),
        "tags": dict(tags) if tags else None,
    }


def sample_request(store_id: str, sample: RunSample) -> tuple[dict[str, Any], str]:
    """The create request of a sample and its token (its sample identity and staged content, never the run): what
    the run's create sends, the import path tags and the abort step derives to find every upload of the sample.

    :raises AirflowFailException: the request is invalid (see :func:`check_request`).
    """
    row = sample.row
    request = check_request(
        sequence_store_id=store_id,
        source_file_type=row.file_type,
        reference_arn=row.reference_arn,
        name=row.name,
        subject_id=row.subject_id,
        sample_id=row.sample_id,
        generated_from=row.generated_from,
        description=row.description,
        tags=row.tags,
    )
    return request, request_token(request, sample.sources)
