"""DAGs that wait for a read set with OmicsReadSetStatusSensor, blocking and deferred, for tests/test_sensor.py.

The store and read set ids come from the run's conf (``dag.test(run_conf=...)``) through templated params;
the ``omics_test`` AWS connection is set by the test in the environment.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_omics.sensors.omics import OmicsReadSetStatusSensor

SENSOR_DAG_IDS = {False: "omics_sensor_blocking", True: "omics_sensor_deferrable"}

for _deferrable, _dag_id in SENSOR_DAG_IDS.items():
    with DAG(
        dag_id=_dag_id,
        schedule=None,
        catchup=False,
        params={"sequence_store_id": "", "read_set_id": ""},
        # One retry with no delay: a terminal read set status must fail the task without using it.
        default_args={"retries": 1, "retry_delay": timedelta(0)},
    ) as _dag:
        OmicsReadSetStatusSensor(
            task_id="wait_active",
            sequence_store_id="{{ params.sequence_store_id }}",
            read_set_id="{{ params.read_set_id }}",
            aws_conn_id="omics_test",
            deferrable=_deferrable,
            waiter_delay=1,
            waiter_max_attempts=30,
        )
    globals()[_dag_id] = _dag
