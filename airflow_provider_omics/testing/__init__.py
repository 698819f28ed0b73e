"""A local emulator of the AWS HealthOmics sequence-store API, for offline tests with the real boto3 client.

moto has no HealthOmics backend. :class:`OmicsEmulator` serves CreateSequenceStore, the multipart read set
upload calls, read set metadata, GetReadSet and the tags of stores and read sets over real HTTP, with the
service's validation, error shapes, PROCESSING_UPLOAD -> ACTIVE / UPLOAD_FAILED transition and FASTQ ETags;
:class:`FaultConfig` injects throttles, server errors, latency, dropped connections and answers lost after the
request was served; :meth:`OmicsEmulator.hold_activations` keeps read sets in PROCESSING_UPLOAD until released.
``python -m airflow_provider_omics.testing.emulator`` runs it in the foreground; processes that did not start
it steer it over HTTP (``GET /_emulator/health``, ``GET``/``POST /_emulator/faults`` with
:meth:`FaultConfig.to_dict` JSON, ``POST /_emulator/inject`` with ``{"error", "operation", "count"}``,
``GET``/``POST /_emulator/activations`` with ``{"hold": true, "release_after_reads": n}`` or
``{"hold": false}``) and build clients with :func:`emulator_client`.

Layout, after moto: :mod:`.models` (state and rules, no HTTP), :mod:`.responses` (the HTTP layer),
:mod:`.exceptions` (error shapes), :mod:`.content` (the content check and ETags), :mod:`.auth` (SigV4),
:mod:`.faults`, :mod:`.server` (``OmicsEmulator``) and :mod:`.emulator` (the command line).
"""

from __future__ import annotations

from airflow_provider_omics.testing.faults import FaultConfig
from airflow_provider_omics.testing.models import OmicsBackend
from airflow_provider_omics.testing.server import OmicsEmulator, emulator_client

__all__ = ["FaultConfig", "OmicsBackend", "OmicsEmulator", "emulator_client"]
