"""The Airflow internals the tests reach into, on each supported Airflow (2.11, 3.0, 3.1 and later).

Each helper imports Airflow when called, as the tests do, so that a test's Airflow home is set first.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
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
    """Run one task instance the way ``dag.test()`` does, the triggerer in process. A task that fails is left
    failed (in the database and the task's log), as ``dag.test()`` leaves it."""
    if not AIRFLOW_V_3_0_PLUS:
        _run_task_as_airflow_2_dag_test(ti, task)
        return
    from airflow.sdk.definitions.dag import _run_task

    if "task" in inspect.signature(_run_task).parameters:
        _run_task(ti=ti, task=task, run_triggerer=True)
    else:
        # Airflow 3.0 runs the task the instance carries.
        ti.task = task
        _run_task(ti=ti, run_triggerer=True)


def _run_task_as_airflow_2_dag_test(ti: Any, task: Any) -> None:
    import logging

    from airflow.models.dag import _run_task
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.merge(ti)
        ti.task = task
        try:
            _run_task(ti=ti, inline_trigger=True, session=session)
        except Exception:
            # Airflow 2's dag.test() logs a failed task and goes on; the task instance is already marked failed.
            logging.getLogger(__name__).exception("Task failed; ti=%s", ti)


def clear_dag_run_tasks(dag: Any, task_ids: list[Any], dag_run: Any, session: Any) -> None:
    """Clear these tasks of one DAG run, as the UI does: Airflow 3 names the run by its id, Airflow 2 by its
    execution date."""
    if AIRFLOW_V_3_0_PLUS:
        dag.clear(task_ids=task_ids, run_id=dag_run.run_id, session=session)
    else:
        dag.clear(
            task_ids=task_ids, start_date=dag_run.execution_date, end_date=dag_run.execution_date, session=session
        )


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
    if AIRFLOW_V_3_0_PLUS:
        if logical_date is None:
            return dag.test(run_conf=run_conf)
        return dag.test(run_conf=run_conf, logical_date=logical_date, run_after=logical_date)
    with _inline_triggers_recorded():
        if logical_date is None:
            return dag.test(run_conf=run_conf)
        return dag.test(run_conf=run_conf, execution_date=logical_date)


# Airflow 2: the triggers dag.test() ran in line in this process, as (classpath, kwargs).
_inline_triggers: list[tuple[str, dict[str, Any]]] = []


@contextlib.contextmanager
def _inline_triggers_recorded() -> Iterator[None]:
    from airflow.models import dag as dag_module

    run_inline = dag_module._run_inline_trigger

    def recorded(trigger: Any) -> Any:
        _inline_triggers.append(trigger.serialize())
        return run_inline(trigger)

    dag_module._run_inline_trigger = recorded
    try:
        yield
    finally:
        dag_module._run_inline_trigger = run_inline


def deferred_triggers(trigger_class: type) -> list[dict[str, Any]]:
    """The kwargs of each trigger of this class a task deferred to in this test session. Airflow 3 stores each in
    the trigger table (dag.test() too); Airflow 2's dag.test() runs a trigger in line without storing it, so there
    :func:`dag_test` records each as dag.test() hands it to its in-line run."""
    classpath = f"{trigger_class.__module__}.{trigger_class.__qualname__}"
    if not AIRFLOW_V_3_0_PLUS:
        return [kwargs for path, kwargs in _inline_triggers if path == classpath]
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    with create_session() as session:
        return [trigger.kwargs for trigger in session.query(Trigger).filter(Trigger.classpath == classpath)]


def rendered_link(link: Any, task: Any, ti: Any) -> str:
    """The URL the UI shows for an operator link of a finished task instance: Airflow 3's task runner renders it
    into the link's XCom when the task ends; Airflow 2's webserver asks the link when the page is drawn."""
    if not AIRFLOW_V_3_0_PLUS:
        return str(link.get_link(task, ti_key=ti.key))
    from airflow.utils.session import create_session
    from sqlalchemy import select

    XComModel = xcom_model()
    with create_session() as session:
        row = session.execute(
            select(XComModel.value).where(
                XComModel.key == link.xcom_key,
                XComModel.run_id == ti.run_id,
                XComModel.dag_id == ti.dag_id,
                XComModel.task_id == ti.task_id,
                XComModel.map_index == ti.map_index,
            )
        ).first()
    assert row is not None, f"no XCom {link.xcom_key!r}"
    return str(XComModel.deserialize_value(row))
