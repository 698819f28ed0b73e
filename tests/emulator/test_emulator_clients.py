"""Clients we do not write: AWS's own uploader (aws-healthomics-tools), and the foreground CLI as a process."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from botocore.config import Config
from emulator_support import fastq, read_back, wait_settled
from omics.transfer.manager import TransferManager

from airflow_provider_omics.testing import OmicsEmulator, emulator_client


def test_aws_transfer_manager_single_fastq(emulator: OmicsEmulator, tmp_path: Path) -> None:
    client = emulator.client(config=Config(inject_host_prefix=False))
    store_id = client.create_sequence_store(name="transfer manager")["id"]
    data = gzip.compress(fastq(3000, seed=4))
    path = tmp_path / "reads.fastq.gz"
    path.write_bytes(data)
    with TransferManager(client) as manager:
        read_set_id = manager.upload_read_set(str(path), store_id, "FASTQ", "single", "subject", "sample")
    meta = wait_settled(client, store_id, str(read_set_id))
    assert meta["status"] == "ACTIVE", meta.get("statusMessage")
    assert meta["etag"]["source1"] == hashlib.md5(gzip.decompress(data)).hexdigest()
    assert read_back(client, store_id, str(read_set_id)) == data


def test_aws_transfer_manager_paired_fastq(emulator: OmicsEmulator, tmp_path: Path) -> None:
    client = emulator.client(config=Config(inject_host_prefix=False))
    store_id = client.create_sequence_store(name="transfer manager")["id"]
    reads = {"SOURCE1": gzip.compress(fastq(2000, seed=5)), "SOURCE2": gzip.compress(fastq(2000, seed=6, mate=2))}
    paths = []
    for source, data in reads.items():
        paths.append(tmp_path / f"{source}.fastq.gz")
        paths[-1].write_bytes(data)
    with TransferManager(client) as manager, open(paths[0], "rb") as first, open(paths[1], "rb") as second:
        read_set_id = manager.upload_read_set([first, second], store_id, "FASTQ", "paired", "subject", "sample")
    meta = wait_settled(client, store_id, str(read_set_id))
    assert meta["status"] == "ACTIVE", meta.get("statusMessage")
    assert meta["sequenceInformation"]["totalReadCount"] == 4000
    for source, data in reads.items():
        assert read_back(client, store_id, str(read_set_id), source) == data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError("the emulator did not print its ready line")
    return process.stdout.readline().strip()


def test_foreground_cli(tmp_path: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "airflow_provider_omics.testing.emulator", "--port", str(port)]
    command += ["--data-dir", str(tmp_path), "--access-key", "AKIDCLI", "--secret-key", "cli-secret"]
    command += ["--activation-delay", "0", "--hold-activations", "--release-after-reads", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert _read_line(process, timeout=30) == f"OmicsEmulator listening on http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/health", timeout=5) as response:
            assert json.loads(response.read()) == {"status": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/activations", timeout=5) as response:
            assert json.loads(response.read()) == {"hold": True, "release_after_reads": 2}
        omics = emulator_client(
            f"http://127.0.0.1:{port}", aws_access_key_id="AKIDCLI", aws_secret_access_key="cli-secret"
        )
        store = omics.create_sequence_store(name="from the cli")
        assert omics.list_sequence_stores()["sequenceStores"][0]["id"] == store["id"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert (tmp_path / "stores" / f"{store['id']}.json").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
