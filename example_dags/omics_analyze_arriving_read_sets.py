"""
Run downstream work on every read set that arrives, verified, in a HealthOmics sequence store.

The upload DAGs (``omics_upload_read_set``, ``omics_upload_sequencing_run``) emit an asset event for each
task that verified read sets, on the store's asset ``omics://<region>/<account>/sequence-store/<store id>``. This
DAG is scheduled on that asset: Airflow runs it after read sets arrive, and its run receives the events since its
last run. Each event's extra lists the read sets verified (``read_sets``: id, ARN, name, sample, subject, file
type and ETags each); ``analyze`` runs once per read set.

``analyze`` is where an analysis starts (a HealthOmics workflow run with the read set as its input, say); here it
checks that the read set is ACTIVE and logs what it would analyze. Set ``OMICS_SEQUENCE_STORE_ARN`` (the store's
ARN, as GetSequenceStore and the console show it) in the environment of the dag-processor and the scheduler.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_omics.assets.omics import event_read_sets, sequence_store_asset
from airflow_provider_omics.hooks.omics import OmicsHook

SEQUENCE_STORE = sequence_store_asset(
    os.environ.get("OMICS_SEQUENCE_STORE_ARN", "arn:aws:omics:us-east-1:123456789012:sequenceStore/1234567890")
)

with DAG(
    dag_id="omics_analyze_arriving_read_sets",
    description="Downstream of the uploads: one analysis per read set verified in the sequence store",
    schedule=[SEQUENCE_STORE],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["omics", "healthomics", "asset"],
):

    @task
    def arrived_read_sets(*, triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """Every read set of the asset events that triggered this run: the read sets to analyze."""
        events = triggering_asset_events[SEQUENCE_STORE] if triggering_asset_events else []
        return [
            {"sequence_store_id": event.extra["sequence_store_id"], **read_set}
            for event in events
            for read_set in event_read_sets(event.extra)
        ]

    @task(map_index_template="{{ read_set.sample_id }} {{ read_set.read_set_id }}")
    def analyze(read_set: dict[str, Any]) -> str:
        hook = OmicsHook(aws_conn_id="aws_default")
        metadata = hook.get_read_set_metadata(read_set["sequence_store_id"], read_set["read_set_id"])
        if metadata["status"] != "ACTIVE":
            raise ValueError(f"Read set {read_set['read_set_id']} is {metadata['status']}, not ACTIVE")
        print(
            f"Analyzing read set {read_set['read_set_id']} of sample {read_set['sample_id']} "
            f"({read_set['file_type']}, ETags {read_set['etags']})"
        )
        return str(read_set["read_set_id"])

    analyze.expand(read_set=arrived_read_sets())
