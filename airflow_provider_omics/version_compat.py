"""The Airflow versions this package runs on, and the names that moved between them, imported once here.

The package supports Airflow 2.11 to 3.x. Conditional code tests the constants below (computed from the installed
Airflow, as the Amazon provider's ``version_compat`` does) instead of parsing ``airflow.__version__`` itself; the
names that live elsewhere on older releases (``airflow.sdk`` is Airflow 3's; on Airflow 2 assets are datasets) come
through ``apache-airflow-providers-common-compat``'s shims, which pick the module the running Airflow has.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING


@functools.cache
def get_base_airflow_version_tuple() -> tuple[int, int, int]:
    """The installed Airflow's (major, minor, micro), pre-release and local parts dropped."""
    from airflow import __version__
    from packaging.version import Version

    airflow_version = Version(__version__)
    return airflow_version.major, airflow_version.minor, airflow_version.micro


AIRFLOW_V_3_0_PLUS: bool = get_base_airflow_version_tuple() >= (3, 0, 0)
AIRFLOW_V_3_1_PLUS: bool = get_base_airflow_version_tuple() >= (3, 1, 0)
# Airflow 3.1.3 stores an asset event whose extra nests lists and dicts (apache/airflow#57352). Before it, an event
# emitted through an asset alias with such an extra fails the task when it ends (apache/airflow#56882).
AIRFLOW_V_3_1_3_PLUS: bool = get_base_airflow_version_tuple() >= (3, 1, 3)

# An asset event's extra may hold lists and dicts (JSON); before Airflow 3.1.3 its values must be hashable.
NESTED_ASSET_EVENT_EXTRA: bool = AIRFLOW_V_3_1_3_PLUS

if TYPE_CHECKING:
    from airflow.sdk import Asset, AssetAlias, BaseOperator, TaskGroup, XComArg
else:
    # Airflow 2: airflow.datasets (Dataset, DatasetAlias), airflow.models, airflow.utils.task_group.
    from airflow.providers.common.compat.sdk import Asset, AssetAlias, BaseOperator, TaskGroup, XComArg

__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_3_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "NESTED_ASSET_EVENT_EXTRA",
    "Asset",
    "AssetAlias",
    "BaseOperator",
    "TaskGroup",
    "XComArg",
    "get_base_airflow_version_tuple",
]
