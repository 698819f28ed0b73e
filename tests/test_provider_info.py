"""get_provider_info() is what Airflow sees of the provider: it must list exactly what exists."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil

import pytest

import airflow_provider_omics
from airflow_provider_omics import get_provider_info

# In the compat suite (`make test-compat`): what every supported Airflow must do.
pytestmark = pytest.mark.compat


def _classes(module_name: str, base: type) -> set[str]:
    module = importlib.import_module(module_name)
    return {
        f"{module_name}.{name}"
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and issubclass(obj, base) and obj.__module__ == module_name
    }


# Modules of the listed packages that the providers manager is not told about, and why.
NOT_LISTED = {
    "airflow_provider_omics.operators.base": "the bases the operators share, no operator of its own",
    "airflow_provider_omics.operators.omics_run": "the deprecated alias of operators.sequencing_run",
    "airflow_provider_omics.hooks.pacing": "the pacing the hook's clients use, no hook of its own",
}


def test_every_listed_module_and_link_imports_and_every_module_is_listed() -> None:
    from airflow.providers.common.compat.sdk import BaseOperatorLink
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_omics.version_compat import BaseOperator

    info = get_provider_info()
    listed = {
        kind: {m for entry in info[kind] for m in entry["python-modules"]}
        for kind in ("hooks", "operators", "sensors", "triggers")
    }
    for kind, folder in (
        ("hooks", "hooks"),
        ("operators", "operators"),
        ("sensors", "sensors"),
        ("triggers", "triggers"),
    ):
        package = importlib.import_module(f"airflow_provider_omics.{folder}")
        present = {f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)}
        assert listed[kind] == present - set(NOT_LISTED), kind
    for module in listed["operators"] | listed["sensors"]:
        assert _classes(module, BaseOperator), module
    for module in listed["triggers"]:
        assert _classes(module, BaseTrigger), module
    links = set()
    for module in ("airflow_provider_omics.links.omics",):
        links |= _classes(module, BaseOperatorLink)
    assert set(info["extra-links"]) == links
    json.dumps(info)  # plain data, as the providers manager stores it


def test_airflow_discovers_the_provider_and_its_config() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-omics" in manager.providers
    assert manager.providers["airflow-provider-omics"].version == airflow_provider_omics.__version__
    assert "airflow_provider_omics.links.omics.OmicsReadSetLink" in manager.extra_links_class_names
    from airflow.configuration import conf

    # What Airflow's components do as they start (Airflow 3.3 also does it on the first read of a missing option).
    manager.initialize_providers_configuration()
    assert conf.get("omics", "allowed_local_roots") == ""


def test_the_supported_airflow_range_is_the_one_the_package_declares() -> None:
    import tomllib
    from pathlib import Path

    from airflow import __version__ as airflow_version
    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    (airflow,) = [
        Requirement(r) for r in pyproject["project"]["dependencies"] if Requirement(r).name == "apache-airflow"
    ]
    assert str(airflow.specifier) == "<4,>=2.11"
    assert airflow_provider_omics.SUPPORTED_AIRFLOW == "2.11 to 3.3"
    assert "Runs on Apache Airflow 2.11 to 3.3." in get_provider_info()["description"]
    # The Airflow this suite runs on is one of them.
    assert Version(airflow_version) in airflow.specifier
