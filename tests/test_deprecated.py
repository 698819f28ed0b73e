"""The names that moved stay importable from where they were for one release, and say where they went."""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning

from airflow_provider_omics.operators import omics, omics_import, sequencing_run
from airflow_provider_omics.readsets import request, run
from airflow_provider_omics.sensors.omics import OmicsReadSetStatusSensor
from airflow_provider_omics.utils import payloads

# In the compat suite (`make test-compat`): what every supported Airflow must do.
pytestmark = pytest.mark.compat


def test_the_omics_run_module_warns_and_gives_the_same_operators_and_steps() -> None:
    sys.modules.pop("airflow_provider_omics.operators.omics_run", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        omics_run = importlib.import_module("airflow_provider_omics.operators.omics_run")
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert any("operators.sequencing_run" in message for message in messages), messages
    for name in sequencing_run.__all__:
        assert getattr(omics_run, name) is getattr(sequencing_run, name), name
    assert omics_run.pack_run_parts is run.pack_run_parts
    assert omics_run.summary_location is run.summary_location
    assert omics_run.sample_request is request.sample_request
    assert omics_run.sample_key is payloads.sample_key
    assert set(omics_run.__all__) >= set(sequencing_run.__all__)


META = {
    "sequence_store_id": "1234567890",
    "source_file_type": "FASTQ",
    "name": "n",
    "subject_id": "p",
    "sample_id": "s",
}


@pytest.mark.parametrize(
    ("operator", "arguments", "instead"),
    [
        (omics.OmicsSplitReadSetOperator, {"sources": ["/data/r1.fastq"]}, "OmicsPlanSequencingRunOperator"),
        (omics.OmicsCreateReadSetUploadOperator, {"sources": {}, **META}, "OmicsCreateRunUploadsOperator"),
        (
            omics.OmicsCompleteReadSetUploadOperator,
            {"sequence_store_id": "1234567890", "upload_id": "1", "parts": []},
            "OmicsCompleteRunUploadsOperator",
        ),
        (
            omics.OmicsAbortReadSetUploadOperator,
            {"sequence_store_id": "1234567890", "upload_id": "1"},
            "OmicsAbortRunUploadsOperator",
        ),
        (
            omics.OmicsDigestSourcesOperator,
            {"sequence_store_id": "1234567890", "sources": {}, "source_file_type": "FASTQ"},
            "OmicsDigestRunSourcesOperator",
        ),
        (
            omics.OmicsVerifyReadSetOperator,
            {"sequence_store_id": "1234567890", "read_set_id": "1", "digests": None, "sources": {}},
            "OmicsVerifyRunReadSetsOperator",
        ),
        (
            omics_import.OmicsImportReadSetOperator,
            {"sources": {}, "method_task_id": "split", **META},
            "OmicsImportRunReadSetsOperator",
        ),
    ],
)
def test_the_single_read_set_operators_warn_and_name_the_run_operator_to_use(
    operator: type[Any], arguments: dict[str, Any], instead: str
) -> None:
    """Each still builds (and runs: tests/dags/upload_omics.py's ``omics_upload_operators`` and
    ``upload_interludes.py`` wire them by hand for test_pipeline, test_reliability and test_source_pinning)."""
    with pytest.warns(AirflowProviderDeprecationWarning) as caught:
        built = operator(task_id="step", **arguments)
    assert isinstance(built, operator)
    [message] = [str(w.message) for w in caught if issubclass(w.category, AirflowProviderDeprecationWarning)]
    assert message.startswith(f"{operator.__name__} is deprecated") and instead in message
    assert "upload_read_set(...)" in message


def test_the_part_operator_and_the_sensor_are_not_deprecated() -> None:
    """Both serve the run too: the part tasks of every pipeline, the wait for one read set."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", AirflowProviderDeprecationWarning)
        omics.OmicsUploadReadSetPartOperator(task_id="parts", sequence_store_id="1234567890", upload_records={})
        OmicsReadSetStatusSensor(task_id="wait", sequence_store_id="1234567890", read_set_id="1")
