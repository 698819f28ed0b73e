"""The names that moved stay importable from where they were for one release, and say where they went."""

from __future__ import annotations

import importlib
import sys
import warnings

from airflow_provider_omics.operators import sequencing_run
from airflow_provider_omics.readsets import request, run
from airflow_provider_omics.utils import payloads


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
