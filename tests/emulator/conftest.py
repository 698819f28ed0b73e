"""Fixtures for the emulator tests: a running emulator, a boto3 client for it, a sequence store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config

from airflow_provider_omics.testing import OmicsEmulator


@pytest.fixture
def emulator() -> Iterator[OmicsEmulator]:
    with OmicsEmulator(activation_delay=0.05) as emu:
        yield emu


@pytest.fixture
def client(emulator: OmicsEmulator) -> Any:
    return emulator.client(config=Config(retries={"mode": "standard", "max_attempts": 3}))


@pytest.fixture
def raw_client(emulator: OmicsEmulator) -> Any:
    """A client that does not validate parameters nor retry: requests reach the emulator as given."""
    return emulator.client(config=Config(parameter_validation=False, retries={"total_max_attempts": 1}))


@pytest.fixture
def store_id(client: Any) -> str:
    return str(client.create_sequence_store(name="test store")["id"])


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's standard retry mode, without its backoff sleeps (up to seconds each), to keep tests fast."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.001)
