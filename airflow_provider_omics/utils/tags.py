"""The tags this provider puts on uploads and read sets (users may not set them)."""

from __future__ import annotations

# The tag whose value is the create request's idempotency token: CreateMultipartReadSetUpload gives an upload's
# tags to the read set it becomes, and ListTagsForResource reads them back, so the read set of a request can be
# found again when Complete's answer was lost (``OmicsHook.find_read_sets``).
REQUEST_TAG = "airflow-provider-omics:request"
# The tag a verify step puts on a read set it proved to hold the staged data, just before it announces the read set
# in an asset event: a read set that carries it was verified and announced once, and is never announced again.
VERIFIED_TAG = "airflow-provider-omics:verified"
