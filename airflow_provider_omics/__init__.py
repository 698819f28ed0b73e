"""Apache Airflow provider for AWS HealthOmics read set uploads."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_INTEGRATION = "AWS HealthOmics"
# The Airflow releases this package runs on: the Amazon provider's range (pyproject.toml declares the same).
SUPPORTED_AIRFLOW = "2.11 to 3.3"


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow (the ``apache_airflow_provider`` entry point)."""
    return {
        "package-name": "airflow-provider-omics",
        "name": "AWS HealthOmics",
        "description": "Upload FASTQ, BAM, CRAM and uBAM files to AWS HealthOmics sequence stores as "
        "mapped, resumable part uploads, then wait for the read set and verify its ETag. "
        f"Runs on Apache Airflow {SUPPORTED_AIRFLOW}.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.aws.amazon.com/omics/latest/dev/synchronous-uploads.html",
                "tags": ["aws"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_omics.hooks.omics"]}],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_omics.operators.omics",
                    "airflow_provider_omics.operators.omics_import",
                    "airflow_provider_omics.operators.sequencing_run",
                ],
            }
        ],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_omics.sensors.omics"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_omics.triggers.omics"]}],
        "extra-links": [
            "airflow_provider_omics.links.omics.OmicsReadSetLink",
            "airflow_provider_omics.links.omics.OmicsReadSetImportJobLink",
        ],
        "asset-uris": [
            {
                "schemes": ["omics"],
                "handler": "airflow_provider_omics.assets.omics.sanitize_uri",
                "factory": "airflow_provider_omics.assets.omics.create_asset",
            }
        ],
        # The same scheme under Airflow 2's name for it (assets were datasets).
        "dataset-uris": [
            {
                "schemes": ["omics"],
                "handler": "airflow_provider_omics.assets.omics.sanitize_uri",
                "factory": "airflow_provider_omics.assets.omics.create_asset",
            }
        ],
        "config": {
            "omics": {
                "description": "Settings of the AWS HealthOmics provider.",
                "options": {
                    "allowed_local_roots": {
                        "description": "Comma-separated directories that local staged sources must lie under "
                        "(checked after resolving symlinks and '..'). Empty allows any local path the worker can "
                        "read, except the Airflow home, /proc, /sys, /dev and credential files, which are never "
                        "allowed. Operators may only narrow it with their own allowed_local_roots.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/data/staging,/mnt/shared/runs",
                        "default": "",
                    },
                    "allowed_s3_prefixes": {
                        "description": "Comma-separated s3://bucket/prefix values that S3 staged sources must "
                        "start with. Empty allows any bucket. Operators may only narrow it with their own "
                        "allowed_s3_prefixes.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://genomics-staging/incoming/",
                        "default": "",
                    },
                },
            }
        },
    }
