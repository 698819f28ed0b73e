"""Deprecated: the operators of a sequencing run moved to :mod:`airflow_provider_omics.operators.sequencing_run`
(so that "run" stays free for HealthOmics workflow runs), and their steps to :mod:`airflow_provider_omics.readsets`.

Importing this module warns; it goes away in the next release.
"""

from __future__ import annotations

import warnings

from airflow_provider_omics.operators import sequencing_run
from airflow_provider_omics.operators.sequencing_run import *  # noqa: F403 (the names it had, from where they are)
from airflow_provider_omics.readsets.request import sample_request
from airflow_provider_omics.readsets.run import (
    SUMMARY_COLUMNS,
    pack_run_parts,
    resolve_stored,
    summary_csv,
    summary_location,
    wait_until_active,
)
from airflow_provider_omics.utils.payloads import sample_key

warnings.warn(
    "airflow_provider_omics.operators.omics_run is deprecated: import the operators from "
    "airflow_provider_omics.operators.sequencing_run.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    *sequencing_run.__all__,
    "SUMMARY_COLUMNS",
    "pack_run_parts",
    "resolve_stored",
    "sample_key",
    "sample_request",
    "summary_csv",
    "summary_location",
    "wait_until_active",
]
