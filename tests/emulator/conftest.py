"""Fixtures for the emulator tests: a running emulator per test, a boto3 client for it, a sequence store; and a
check, on every omics client the tests create, that each response conforms to the service model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from shape_check import ResponseChecker

from airflow_provider_omics.testing import OmicsEmulator


@pytest.fixture(autouse=True)
def responses_conform_to_the_service_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ResponseChecker]:
    """Attach a :class:`ResponseChecker` to every omics client created during the test, however it is built
    (``OmicsEmulator.client``, ``emulator_client``, a test's own boto3 session), and fail the test if any
    response did not conform, even one whose call ran in a thread that swallowed the error."""
    checker = ResponseChecker()
    create_client = botocore.session.Session.create_client

    def create_checked_client(self: botocore.session.Session, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, service_name, *args, **kwargs)
        return checker.attach(client) if service_name == "omics" else client

    monkeypatch.setattr(botocore.session.Session, "create_client", create_checked_client)
    yield checker
    checker.assert_clean()


@pytest.fixture
def emulator(make_emulator: Callable[..., OmicsEmulator]) -> OmicsEmulator:
    """An emulator of the test's own (not the module's, as in tests/conftest.py): every test starts empty."""
    return make_emulator()


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
