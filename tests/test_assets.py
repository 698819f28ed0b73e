"""The sequence store's asset: its URI, the scheme Airflow normalizes through the provider, and the event extra."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.assets import omics as omics_assets
from airflow_provider_omics.assets.omics import (
    READ_SETS_ALIAS,
    event_read_sets,
    read_set_entry,
    read_sets_event_extra,
    sequence_store_asset,
    sequence_store_id_of,
    sequence_store_uri,
)
from airflow_provider_omics.version_compat import AIRFLOW_V_3_0_PLUS, Asset, AssetAlias

# In the compat suite (`make test-compat`): what every supported Airflow must do.
pytestmark = pytest.mark.compat

STORE_ARN = "arn:aws:omics:us-east-1:123456789012:sequenceStore/1234567890"
URI = "omics://us-east-1/123456789012/sequence-store/1234567890"


def test_a_store_or_read_set_arn_names_the_stores_asset() -> None:
    assert sequence_store_uri("us-east-1", "123456789012", "1234567890") == URI
    assert sequence_store_asset(STORE_ARN).uri == URI
    if AIRFLOW_V_3_0_PLUS:  # Airflow 2's Dataset has a URI only.
        assert sequence_store_asset(STORE_ARN).name == URI
    assert sequence_store_asset(f"{STORE_ARN}/readSet/9876543210").uri == URI


def test_the_store_id_of_an_arn_or_empty_for_anything_else() -> None:
    assert sequence_store_id_of(STORE_ARN) == "1234567890"
    assert sequence_store_id_of(f" {STORE_ARN}/readSet/9876543210\n") == "1234567890"
    assert [sequence_store_id_of(arn) for arn in (None, "", "1234567890", f"{STORE_ARN}/extra")] == ["", "", "", ""]


@pytest.mark.parametrize(
    "arn",
    [
        "1234567890",
        "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890",
        f"{STORE_ARN}/readSet/x",
        f"{STORE_ARN}/extra",
    ],
)
def test_anything_else_than_a_store_arn_is_refused_with_the_expected_form(arn: str) -> None:
    with pytest.raises(ValueError, match="not a sequence store ARN: expected arn:aws:omics"):
        sequence_store_asset(arn)


def _refusal(uri: str) -> str:
    """What Airflow says of a URI the scheme's normalizer refuses. Airflow 3 raises it; Airflow 2 warns with it (and
    raises only with ``[core] strict_dataset_uri_validation``)."""
    if AIRFLOW_V_3_0_PLUS:
        with pytest.raises(ValueError) as refused:
            Asset(uri)
        return str(refused.value)
    with pytest.warns(UserWarning, match="is not AIP-60 compliant") as warned:
        Asset(uri)
    return next(str(w.message) for w in warned if "AIP-60" in str(w.message))


def test_airflow_normalizes_the_scheme_through_the_provider(airflow_db: Path) -> None:
    assert Asset("omics://US-EAST-1/123456789012/sequence-store/1234567890/").uri == URI
    refusal = _refusal("omics://us-east-1/1234/sequence-store/1234567890")
    assert "the path must be /<12-digit account>/sequence-store/" in refusal
    assert "the host must be an AWS region" in _refusal("omics://bucket/123456789012/sequence-store/1234567890")


def test_the_event_extra_lists_each_read_set_with_its_etags() -> None:
    metadata: dict[str, Any] = {
        "id": "9876543210",
        "arn": f"{STORE_ARN}/readSet/9876543210",
        "name": "S1-reads",
        "sampleId": "S1",
        "subjectId": "P1",
        "fileType": "FASTQ",
        "etag": {"algorithm": "FASTQ_MD5up", "source1": "a" * 32, "source2": "b" * 32},
    }
    entry = read_set_entry(metadata, etag_verified=True)
    assert entry == {
        "read_set_id": "9876543210",
        "read_set_arn": metadata["arn"],
        "name": "S1-reads",
        "sample_id": "S1",
        "subject_id": "P1",
        "file_type": "FASTQ",
        "etag_algorithm": "FASTQ_MD5up",
        "etags": {"source1": "a" * 32, "source2": "b" * 32},
        "etag_verified": True,
    }
    extra = read_sets_event_extra("1234567890", [entry])
    if omics_assets.NESTED_ASSET_EVENT_EXTRA:
        assert extra == {"sequence_store_id": "1234567890", "read_sets": [entry]}
    else:
        assert extra == {"sequence_store_id": "1234567890", "read_sets": json.dumps([entry], sort_keys=True)}
    assert event_read_sets(extra) == [entry]


@pytest.mark.parametrize("nested", [True, False], ids=["nested", "before-3.1.3"])
def test_an_events_read_sets_read_back_in_either_form(monkeypatch: pytest.MonkeyPatch, nested: bool) -> None:
    """Before Airflow 3.1.3 an alias event's extra must hash as ``frozenset(extra.items())`` (Airflow does that to
    group the events): there the read sets are a JSON string, which :func:`event_read_sets` decodes."""
    monkeypatch.setattr(omics_assets, "NESTED_ASSET_EVENT_EXTRA", nested)
    entries = [{"read_set_id": "1", "etags": {"source1": "a" * 32}}, {"read_set_id": "2", "etags": {}}]
    extra = read_sets_event_extra("1234567890", entries)
    assert isinstance(extra["read_sets"], list) is nested
    if not nested:
        hash(frozenset(extra.items()))
    assert event_read_sets(extra) == entries
    assert event_read_sets(json.loads(json.dumps(extra))) == entries
    assert event_read_sets({"sequence_store_id": "1234567890"}) == event_read_sets(None) == []


def test_the_verify_steps_emit_through_the_alias_unless_told_not_to() -> None:
    from airflow_provider_omics.operators.omics import OmicsVerifyReadSetOperator
    from airflow_provider_omics.operators.sequencing_run import OmicsVerifyRunReadSetsOperator

    def verify(**kwargs: Any) -> Any:
        return OmicsVerifyReadSetOperator(
            task_id="verify", sequence_store_id="1234567890", read_set_id="1", digests=None, sources={}, **kwargs
        )

    assert verify().outlets == [AssetAlias(READ_SETS_ALIAS)]
    assert verify(emit_asset_event=False).outlets == []
    mine = AssetAlias("mine")
    assert verify(outlets=[mine]).outlets == [mine, AssetAlias(READ_SETS_ALIAS)]
    run = OmicsVerifyRunReadSetsOperator(task_id="verify", sequence_store_id="1234567890", samples={})
    assert run.outlets == [AssetAlias(READ_SETS_ALIAS)]
