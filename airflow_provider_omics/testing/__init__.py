"""A local emulator of the AWS HealthOmics sequence-store API, for offline tests with the real boto3 client.

moto has no HealthOmics backend. :class:`OmicsEmulator` serves CreateSequenceStore, the multipart read set upload
calls, read set metadata, GetReadSet and the tags of stores and read sets over real HTTP, with the service's
validation, error shapes, PROCESSING_UPLOAD -> ACTIVE / UPLOAD_FAILED transition and FASTQ ETags, and read set
import jobs from an S3 endpoint (``s3_endpoint_url``; :meth:`OmicsEmulator.hold_import_jobs`); :class:`FaultConfig`
injects throttles, server errors, latency, dropped connections and answers lost after the request was served;
:class:`QuotaConfig` enforces the service's API quotas (``OmicsEmulator(quotas="default")``, ThrottlingException
above them); :meth:`OmicsEmulator.hold_activations` keeps read sets in PROCESSING_UPLOAD until released. ``python -m
airflow_provider_omics.testing.emulator`` runs it in the foreground; processes that did not start it steer it over
HTTP (``GET /_emulator/health``, ``GET``/``POST /_emulator/faults`` with :meth:`FaultConfig.to_dict` JSON, ``POST
/_emulator/inject`` with ``{"error", "operation", "count"}``, ``GET``/``POST /_emulator/activations`` with
``{"hold": true, "release_after_reads": n}`` or ``{"hold": false}``, ``GET``/``POST /_emulator/importjobs`` likewise
for import jobs, ``GET``/``POST /_emulator/requests`` to hold requests of an operation at a gate and release them
one by one) and build clients with :func:`emulator_client`.

Layout, after moto: :mod:`.models` (state and the service's rules, no HTTP; its methods take a request's members as
named arguments), :mod:`.responses` (the HTTP layer: parse the request, call the backend, answer), :mod:`.shapes`
(the service model's limits and enums, the request structures and the records), :mod:`.validation` (the checks of a
request's members), :mod:`.workers` (the background activation of read sets and the read set import jobs),
:mod:`.gates` (the holds that keep them for tests), :mod:`.exceptions` (error shapes), :mod:`.quotas` (the API
quotas), :mod:`.content` (the content check and ETags), :mod:`.auth` (SigV4), :mod:`.faults` (fault injection),
:mod:`.omics_emulator` (:class:`OmicsEmulator`, the backend served on a local port, and :func:`emulator_client`) and
:mod:`.cli` (the command line, and ``spawn`` to start it as a child process). :mod:`.emulator` is only the ``python
-m airflow_provider_omics.testing.emulator`` entry point of :mod:`.cli`: the README, the demo and running processes
start the emulator by that name. :mod:`.samples` writes sample sequencing files; :mod:`.deployment` runs a local
Airflow against the emulator.
"""

from __future__ import annotations

from airflow_provider_omics.testing.faults import FaultConfig, HeldRequest
from airflow_provider_omics.testing.models import OmicsBackend
from airflow_provider_omics.testing.omics_emulator import OmicsEmulator, emulator_admin, emulator_client
from airflow_provider_omics.testing.quotas import DEFAULT_QUOTAS, QuotaConfig

__all__ = [
    "DEFAULT_QUOTAS",
    "FaultConfig",
    "HeldRequest",
    "OmicsBackend",
    "OmicsEmulator",
    "QuotaConfig",
    "emulator_admin",
    "emulator_client",
]
