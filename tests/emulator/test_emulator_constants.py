"""The emulator's own copies of the service's enums and limits, checked against botocore's service model.

The emulator does not import the provider's constants (it is an independent oracle); this keeps its values
from drifting away from the model that boto3 itself uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.model import ServiceModel
from shape_check import service_model

from airflow_provider_omics.testing import models
from airflow_provider_omics.testing.content import ETAG_HASHES


@pytest.fixture(scope="module")
def model() -> ServiceModel:
    return service_model()


@pytest.fixture(scope="module")
def shapes(model: ServiceModel) -> Callable[[str], Any]:
    return model.shape_for


@pytest.mark.parametrize(
    ("shape", "values"),
    [
        ("FileType", models.FILE_TYPES),
        ("ETagAlgorithmFamily", models.ETAG_FAMILIES),
        ("ETagAlgorithmFamily", tuple(ETAG_HASHES)),
        ("ReadSetPartSource", models.PART_SOURCES),
        ("ReadSetFile", models.READ_SET_FILES),
        ("ReadSetImportJobStatus", models.IMPORT_JOB_STATUSES),
        ("ReadSetImportJobItemStatus", models.IMPORT_SOURCE_STATUSES),
    ],
)
def test_enums(shapes: Any, shape: str, values: tuple[str, ...]) -> None:
    assert sorted(values) == sorted(shapes(shape).enum)


@pytest.mark.parametrize("shape", ["SequenceStoreId", "UploadId", "ReadSetId", "ImportJobId"])
def test_id_pattern(shapes: Any, shape: str) -> None:
    metadata = shapes(shape).metadata
    assert metadata["pattern"] == "[0-9]+"
    assert models.ID_PATTERN.pattern == f"[0-9]{{{metadata['min']},{metadata['max']}}}"


@pytest.mark.parametrize(
    "shape",
    [
        "UploadReadSetPartRequestPartNumberInteger",
        "CompleteReadSetUploadPartListItemPartNumberInteger",
        "ReadSetUploadPartListItemPartNumberInteger",
        "GetReadSetRequestPartNumberInteger",
        "FileInformationTotalPartsInteger",
    ],
)
def test_part_number_range(shapes: Any, shape: str) -> None:
    assert (shapes(shape).metadata["min"], shapes(shape).metadata["max"]) == (1, models.MAX_PART_NUMBER)


@pytest.mark.parametrize(
    "shape",
    [
        "ListSequenceStoresRequestMaxResultsInteger",
        "ListReadSetUploadPartsRequestMaxResultsInteger",
        "ListMultipartReadSetUploadsRequestMaxResultsInteger",
        "ListReadSetsRequestMaxResultsInteger",
        "ListReadSetImportJobsRequestMaxResultsInteger",
    ],
)
def test_max_results_range(shapes: Any, shape: str) -> None:
    assert (shapes(shape).metadata["min"], shapes(shape).metadata["max"]) == (1, models.MAX_RESULTS)


def test_tag_limits(shapes: Any) -> None:
    assert shapes("TagArn").metadata["max"] == models.MAX_TAG_ARN_LENGTH
    assert (shapes("TagKey").metadata["min"], shapes("TagKey").metadata["max"]) == models.TAG_KEY_LENGTH
    assert shapes("TagValue").metadata["max"] == models.MAX_TAG_VALUE_LENGTH
    assert shapes("TagResourceRequestTagsMap").metadata["max"] == models.MAX_TAGS_PER_RESOURCE


def test_import_job_limits(shapes: Any) -> None:
    sources = shapes("StartReadSetImportJobRequestSourcesList").metadata
    assert (sources["min"], sources["max"]) == (1, models.MAX_IMPORT_SOURCES)
    assert shapes("JobStatusMessage").metadata["max"] == models.JOB_STATUS_MESSAGE_LENGTH
    role = shapes("RoleArn").metadata
    assert (role["min"], role["max"]) == models.ROLE_ARN_LENGTH
    assert shapes("S3Uri").metadata["pattern"] == models.S3_URI_PATTERN.pattern


def test_the_largest_part_fits_the_model(shapes: Any) -> None:
    # The model states no 100 MB limit (the API reference does), only that a part is at most 5 GiB.
    assert shapes("ReadSetUploadPartListItemPartSizeLong").metadata["max"] >= models.MAX_PART_SIZE


def test_operations_are_the_models(model: ServiceModel) -> None:
    assert set(model.operation_names) >= models.OPERATIONS
