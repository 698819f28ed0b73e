"""Operator extra links to AWS HealthOmics resources in the AWS console."""

from __future__ import annotations

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink


class OmicsReadSetLink(BaseAwsLink):
    """
    Link to a read set of a sequence store in the AWS HealthOmics console.

    Persist it with ``OmicsReadSetLink.persist(context=..., operator=..., region_name=...,
    aws_partition=..., sequence_store_id=..., read_set_id=...)``.
    """

    name = "HealthOmics Read Set"
    key = "omics_read_set"
    format_str = (
        BASE_AWS_CONSOLE_LINK
        + "/omics/home?region={region_name}#/sequenceStore/{sequence_store_id}/readSet/{read_set_id}"
    )


class OmicsReadSetImportJobLink(BaseAwsLink):
    """
    Link to a read set import job of a sequence store in the AWS HealthOmics console.

    Persist it with ``OmicsReadSetImportJobLink.persist(context=..., operator=..., region_name=...,
    aws_partition=..., sequence_store_id=..., job_id=...)``.
    """

    name = "HealthOmics Import Job"
    key = "omics_read_set_import_job"
    format_str = (
        BASE_AWS_CONSOLE_LINK + "/omics/home?region={region_name}#/sequenceStore/{sequence_store_id}/importJob/{job_id}"
    )
