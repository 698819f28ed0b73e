"""The Airflow internals the tests reach into, on each supported Airflow (2.11, 3.0, 3.1 and later).

Each helper imports Airflow when called, as the tests do, so that a test's Airflow home is set first.
"""

from __future__ import annotations

import inspect
from typing import Any

from airflow_provider_omics.version_compat import AIRFLOW_V_3_0_PLUS


def dag_bag(**kwargs: Any) -> Any:
    """A DagBag that parses DAG files (``airflow.dag_processing.dagbag`` from 3.1, ``airflow.models`` before)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(**kwargs)


def latest_serialized_dag(dag: Any, session: Any) -> Any:
    """The scheduler's view of a DAG: its latest serialized version in the database, or (``dag.test()`` of Airflow
    3.0 and 2 does not write it there) the DAG serialized and read back as the scheduler would."""
    try:
        from airflow.models.dagbag import DBDagBag
    except ImportError:
        from airflow.models.serialized_dag import SerializedDagModel

        stored = SerializedDagModel.get_dag(dag.dag_id, session=session)
        if stored is not None:
            return stored
        dag_serialization, _ = serialization_classes()
        return dag_serialization.from_dict(dag_serialization.to_dict(dag))
    return DBDagBag().get_latest_version_of_dag(dag.dag_id, session=session)


def serialization_classes() -> tuple[Any, Any]:
    """The DAG and operator serialization classes (DagSerialization and OperatorSerialization from 3.1,
    SerializedDAG and SerializedBaseOperator before)."""
    from airflow.serialization import serialized_objects

    if hasattr(serialized_objects, "DagSerialization"):
        return serialized_objects.DagSerialization, serialized_objects.OperatorSerialization
    return serialized_objects.SerializedDAG, serialized_objects.SerializedBaseOperator


def run_task_as_dag_test(ti: Any, task: Any) -> None:
    """Run one task instance the way ``dag.test()`` does, the triggerer in process."""
    if not AIRFLOW_V_3_0_PLUS:
        raise NotImplementedError("Running one task instance the way dag.test() does needs Airflow 3")
    from airflow.sdk.definitions.dag import _run_task

    if "task" in inspect.signature(_run_task).parameters:
        _run_task(ti=ti, task=task, run_triggerer=True)
    else:
        # Airflow 3.0 runs the task the instance carries.
        ti.task = task
        _run_task(ti=ti, run_triggerer=True)


def xcom_model() -> Any:
    """The ORM model of the XCom table (XComModel on Airflow 3, XCom on 2)."""
    from airflow.models import xcom

    return getattr(xcom, "XComModel", None) or xcom.XCom


def asset_event_models() -> tuple[Any, Any, Any]:
    """The asset event and asset ORM models, and the event's column naming its asset (datasets on Airflow 2)."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent, AssetModel

        return AssetEvent, AssetModel, AssetEvent.asset_id
    from airflow.models.dataset import DatasetEvent, DatasetModel

    return DatasetEvent, DatasetModel, DatasetEvent.dataset_id


def dag_test(dag: Any, run_conf: dict[str, Any], logical_date: Any = None) -> Any:
    """``dag.test()`` with ``run_conf``, at ``logical_date`` when given (a run there before is replaced): Airflow 3
    takes the run's ``logical_date`` and ``run_after``, Airflow 2 its ``execution_date``."""
    if logical_date is None:
        return dag.test(run_conf=run_conf)
    if AIRFLOW_V_3_0_PLUS:
        return dag.test(run_conf=run_conf, logical_date=logical_date, run_after=logical_date)
    return dag.test(run_conf=run_conf, execution_date=logical_date)
