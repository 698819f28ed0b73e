"""ListTagsForResource and TagResource over HTTP: ARNs in the path, tags of stores and of uploaded read sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from emulator_support import fastq, upload_read_set

from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.models import MAX_TAGS_PER_RESOURCE

NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


def _store(client: Any, **tags: str) -> tuple[str, str]:
    store = client.create_sequence_store(name="tagged", tags=tags)
    return store["id"], store["arn"]


def test_tags_of_a_store_and_of_a_read_set_from_its_upload(client: Any) -> None:
    store_id, store_arn = _store(client, team="genomics")
    read_set_id = upload_read_set(client, store_id, {"SOURCE1": fastq(20)}, tags={"run": "run-1", "lane": "3"})
    read_set_arn = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)["arn"]

    assert client.list_tags_for_resource(resourceArn=store_arn)["tags"] == {"team": "genomics"}
    assert client.list_tags_for_resource(resourceArn=read_set_arn)["tags"] == {"run": "run-1", "lane": "3"}
    untagged_id = upload_read_set(client, store_id, {"SOURCE1": fastq(20)})
    untagged_arn = f"{store_arn}/readSet/{untagged_id}"
    assert client.list_tags_for_resource(resourceArn=untagged_arn)["tags"] == {}


@pytest.mark.parametrize(
    ("arn", "error"),
    [
        ("not-an-arn", "ValidationException"),
        ("arn:aws:s3:::bucket/key", "ValidationException"),
        ("arn:aws:omics:us-east-1:123456789012:sequenceStore/abc", "ValidationException"),
        ("arn:aws:omics:us-east-1:123456789012:sequenceStore/{store}/readSet/12", "ValidationException"),
        ("arn:aws:omics:us-east-1:123456789012:sequenceStore/" + "1" * 140, "ValidationException"),
        ("arn:aws:omics:us-east-1:123456789012:sequenceStore/9999999999", "ResourceNotFoundException"),
        ("arn:aws:omics:us-east-1:123456789012:sequenceStore/{store}/readSet/9999999999", "ResourceNotFoundException"),
        ("arn:aws:omics:eu-west-1:123456789012:sequenceStore/{store}", "ResourceNotFoundException"),
        ("arn:aws:omics:us-east-1:210987654321:sequenceStore/{store}", "ResourceNotFoundException"),
        ("arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890", "ResourceNotFoundException"),
    ],
)
def test_unknown_and_malformed_arns(raw_client: Any, arn: str, error: str) -> None:
    store_id, _ = _store(raw_client)
    with pytest.raises(getattr(raw_client.exceptions, error)):
        raw_client.list_tags_for_resource(resourceArn=arn.format(store=store_id))
    with pytest.raises(getattr(raw_client.exceptions, error)):
        raw_client.tag_resource(resourceArn=arn.format(store=store_id), tags={"k": "v"})


def test_a_read_set_arn_names_its_own_store(client: Any) -> None:
    store_id, _ = _store(client)
    _, other_arn = _store(client)
    read_set_id = upload_read_set(client, store_id, {"SOURCE1": fastq(20)})
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.list_tags_for_resource(resourceArn=f"{other_arn}/readSet/{read_set_id}")


def test_tag_resource_adds_and_overwrites(client: Any) -> None:
    store_id, store_arn = _store(client, team="genomics", cost="a")
    read_set_id = upload_read_set(client, store_id, {"SOURCE1": fastq(20)}, tags={"run": "run-1"})
    read_set_arn = f"{store_arn}/readSet/{read_set_id}"

    response = client.tag_resource(resourceArn=store_arn, tags={"cost": "b", "owner": "lab"})
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    client.tag_resource(resourceArn=read_set_arn, tags={"checked": ""})

    assert client.list_tags_for_resource(resourceArn=store_arn)["tags"] == {
        "team": "genomics",
        "cost": "b",
        "owner": "lab",
    }
    assert client.list_tags_for_resource(resourceArn=read_set_arn)["tags"] == {"run": "run-1", "checked": ""}


def test_tag_quota(raw_client: Any) -> None:
    _, store_arn = _store(raw_client)
    raw_client.tag_resource(resourceArn=store_arn, tags={f"k{i}": "v" for i in range(MAX_TAGS_PER_RESOURCE)})
    with pytest.raises(raw_client.exceptions.ValidationException, match="at most"):
        raw_client.tag_resource(resourceArn=store_arn, tags={"one more": "v"})
    with pytest.raises(raw_client.exceptions.ValidationException, match="tags is required"):
        raw_client.tag_resource(resourceArn=store_arn)
    assert len(raw_client.list_tags_for_resource(resourceArn=store_arn)["tags"]) == MAX_TAGS_PER_RESOURCE


def test_tags_survive_a_restart(tmp_path: Path) -> None:
    with OmicsEmulator(data_dir=tmp_path, activation_delay=0.01) as first:
        client = first.client()
        store_id, store_arn = _store(client)
        read_set_id = upload_read_set(client, store_id, {"SOURCE1": fastq(20)}, tags={"run": "run-1"})
        read_set_arn = f"{store_arn}/readSet/{read_set_id}"
        client.tag_resource(resourceArn=store_arn, tags={"added": "later"})
        client.tag_resource(resourceArn=read_set_arn, tags={"also": "later"})
    with OmicsEmulator(data_dir=tmp_path, activation_delay=0.01) as second:
        client = second.client()
        assert client.list_tags_for_resource(resourceArn=store_arn)["tags"] == {"added": "later"}
        assert client.list_tags_for_resource(resourceArn=read_set_arn)["tags"] == {"run": "run-1", "also": "later"}


def test_tag_operations_are_subject_to_faults(emulator: OmicsEmulator) -> None:
    client = emulator.client(config=NO_RETRY)
    _, store_arn = _store(client)
    emulator.inject("ThrottlingException", operation="ListTagsForResource")
    emulator.inject("AccessDeniedException", operation="TagResource")
    with pytest.raises(client.exceptions.ThrottlingException):
        client.list_tags_for_resource(resourceArn=store_arn)
    with pytest.raises(client.exceptions.AccessDeniedException):
        client.tag_resource(resourceArn=store_arn, tags={"k": "v"})
    assert client.list_tags_for_resource(resourceArn=store_arn)["tags"] == {}


def test_the_encoded_arn_passes_signature_checks() -> None:
    with OmicsEmulator(access_key="AKIDTAGS", secret_key="tags-secret") as emu:
        client = emu.client()
        _, store_arn = _store(client, team="signed")
        assert client.list_tags_for_resource(resourceArn=store_arn)["tags"] == {"team": "signed"}
        client.tag_resource(resourceArn=store_arn, tags={"more": "signed"})
        wrong = emu.client(aws_secret_access_key="wrong", config=NO_RETRY)
        with pytest.raises(wrong.exceptions.AccessDeniedException):
            wrong.list_tags_for_resource(resourceArn=store_arn)


def test_the_arn_arrives_percent_encoded(emulator: OmicsEmulator, client: Any) -> None:
    _, store_arn = _store(client)
    urls = []
    client.meta.events.register("before-send.omics.ListTagsForResource", lambda request, **_: urls.append(request.url))
    client.list_tags_for_resource(resourceArn=store_arn)
    assert urls == [f"{emulator.endpoint_url}/tags/{store_arn.replace(':', '%3A').replace('/', '%2F')}"]
