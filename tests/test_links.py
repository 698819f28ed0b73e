"""OmicsReadSetLink: the console URL it builds, what it persists, and its registration with Airflow."""

from __future__ import annotations

from typing import Any

import pytest

import airflow_provider_omics
from airflow_provider_omics.links.omics import OmicsReadSetLink
from airflow_provider_omics.sensors.omics import OmicsReadSetStatusSensor

LINK_PATH = "airflow_provider_omics.links.omics.OmicsReadSetLink"


class RecordingTI:
    """Just enough of a task instance for BaseAwsLink.persist: records what it pushes to XCom."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def sensor(**kwargs: Any) -> OmicsReadSetStatusSensor:
    return OmicsReadSetStatusSensor(
        task_id="wait_active", sequence_store_id="1234567890", read_set_id="9876543210", **kwargs
    )


@pytest.mark.parametrize(
    ("region", "partition", "console"),
    [
        ("us-east-1", "aws", "https://console.aws.amazon.com"),
        ("eu-west-2", "aws", "https://console.aws.amazon.com"),
        ("us-gov-west-1", "aws-us-gov", "https://console.amazonaws-us-gov.com"),
    ],
)
def test_url_points_at_the_read_set_in_its_region(region: str, partition: str, console: str) -> None:
    link = OmicsReadSetLink().format_link(
        region_name=region,
        aws_domain=OmicsReadSetLink.get_aws_domain(partition),
        sequence_store_id="1234567890",
        read_set_id="9876543210",
    )
    assert link == f"{console}/omics/home?region={region}#/sequenceStore/1234567890/readSet/9876543210"


def test_url_is_empty_without_the_read_set() -> None:
    assert OmicsReadSetLink().format_link(region_name="us-east-1", aws_domain="aws.amazon.com") == ""


def test_persist_pushes_only_what_the_url_needs() -> None:
    ti = RecordingTI()
    OmicsReadSetLink.persist(
        context={"ti": ti},
        operator=sensor(),
        region_name="eu-west-2",
        aws_partition="aws",
        sequence_store_id="1234567890",
        read_set_id="9876543210",
    )
    assert ti.pushed == {
        "omics_read_set": {
            "region_name": "eu-west-2",
            "aws_domain": "aws.amazon.com",
            "sequence_store_id": "1234567890",
            "read_set_id": "9876543210",
        }
    }


def test_persist_respects_do_xcom_push_false() -> None:
    ti = RecordingTI()
    OmicsReadSetLink.persist(
        context={"ti": ti},
        operator=sensor(do_xcom_push=False),
        region_name="eu-west-2",
        aws_partition="aws",
        sequence_store_id="1234567890",
        read_set_id="9876543210",
    )
    assert ti.pushed == {}


def test_sensor_declares_the_link() -> None:
    (link,) = sensor().operator_extra_links
    assert isinstance(link, OmicsReadSetLink)
    assert link.name == "HealthOmics Read Set"


def test_link_is_registered_with_airflow() -> None:
    from airflow.providers_manager import ProvidersManager

    assert LINK_PATH in airflow_provider_omics.get_provider_info()["extra-links"]
    assert LINK_PATH in ProvidersManager().extra_links_class_names


def test_serialized_dag_keeps_the_link_for_the_ui() -> None:
    """The API server knows links only from the serialized DAG: name and the XCom key of the URL."""
    from airflow.sdk import DAG

    from tests.compat import serialization_classes

    DagSerialization, _ = serialization_classes()

    with DAG(dag_id="omics_link_serialization", schedule=None) as dag:
        sensor(aws_conn_id="omics_test")

    serialized = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    links = serialized.get_task("wait_active").operator_extra_links
    assert [(link.name, link.xcom_key) for link in links] == [("HealthOmics Read Set", OmicsReadSetLink().xcom_key)]
