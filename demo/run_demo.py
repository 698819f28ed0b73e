"""`make demo`: the main job end to end, offline, on the embedded HealthOmics emulator.

Starts the emulator in its own process, creates a sequence store, generates a small paired gzipped FASTQ,
runs the example DAG ``omics_upload_read_set`` in real Airflow (``airflow dags test`` with a conf, the way the
UI's trigger form would), then prints the read set, its status and whether its ETags match the staged files.
Everything it starts, it stops; everything it writes is under ``.demo/``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflow_provider_omics.testing import emulator_admin, emulator_client
from airflow_provider_omics.testing.cli import spawn
from airflow_provider_omics.testing.samples import write_fastq
from airflow_provider_omics.version_compat import AIRFLOW_V_3_0_PLUS

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".demo"
BIN = Path(sys.executable).parent
DAG_ID = "omics_upload_read_set"


def airflow(env: dict[str, str], *args: str, log: Path | None = None) -> str:
    command = [str(BIN / "airflow"), *args]
    if log is None:
        return subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    with open(log, "w") as out:
        result = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        print(log.read_text()[-4000:])
        raise SystemExit(f"`airflow {' '.join(args[:2])}` failed (full log: {log})")
    return ""


def airflow_json(env: dict[str, str], *args: str) -> Any:
    """The JSON an `airflow ... -o json` command prints (warnings may come before it on stdout)."""
    output = airflow(env, *args, "-o", "json")
    return json.loads(next(line for line in reversed(output.splitlines()) if line.startswith("[")))


def dag_runs(env: dict[str, str]) -> Any:
    """The DAG's runs, as ``airflow dags list-runs`` lists them (newest first)."""
    # Airflow 2 takes the DAG id as an option, Airflow 3 as an argument.
    dag_id = (DAG_ID,) if AIRFLOW_V_3_0_PLUS else ("-d", DAG_ID)
    try:
        return airflow_json(env, "dags", "list-runs", *dag_id)
    except subprocess.CalledProcessError as err:
        if "does not exist in 'dag' table" not in (err.stdout or "") + (err.stderr or ""):
            raise
    # `airflow dags test` of Airflow 2 and 3.0 runs the DAG without recording it in the dag table, which
    # `list-runs` reads: record the DAG files there first.
    airflow(env, "dags", "reserialize", log=WORK / "airflow-dags-reserialize.log")
    return airflow_json(env, "dags", "list-runs", *dag_id)


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    staging = WORK / "staging"
    staging.mkdir(parents=True)
    print("1. Starting the HealthOmics emulator in its own process, with the service's API quotas ...")
    emulator, endpoint = spawn(WORK / "emulator", activation_delay=0.2, extra_args=["--quotas", "default"])
    try:
        print(f"   {endpoint}")
        client = emulator_client(endpoint)
        store_id = client.create_sequence_store(name="demo-store", eTagAlgorithmFamily="MD5up")["id"]
        print(f"2. Created sequence store {store_id} (ETag family MD5up)")

        reads = {}
        for read in (1, 2):
            path = write_fastq(staging / f"sample-1_R{read}.fastq.gz", 20_000, compress=True, seed=read)
            reads[f"SOURCE{read}"] = path
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in reads.values())
        print(f"3. Generated a paired gzipped FASTQ: {sizes}")

        env = {
            **os.environ,
            "AIRFLOW_HOME": str(WORK / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__OMICS__ALLOWED_LOCAL_ROOTS": str(staging),
            # The only thing that differs from real AWS: the connection's endpoint (and dummy credentials).
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {
                    "conn_type": "aws",
                    "login": "demo",
                    "password": "demo",
                    "extra": {"region_name": "us-east-1", "endpoint_url": endpoint},
                }
            ),
        }
        env.pop("AWS_PROFILE", None)
        airflow(env, "db", "migrate", log=WORK / "airflow-db-migrate.log")
        conf = {
            "sequence_store_id": store_id,
            "source_file_type": "FASTQ",
            "read1": str(reads["SOURCE1"]),
            "read2": str(reads["SOURCE2"]),
            "sample_id": "sample-1",
            "subject_id": "subject-1",
            "name": "demo-read-set",
            "part_size_mib": 1,
            "max_tasks": 4,
        }
        if not AIRFLOW_V_3_0_PLUS:
            # Airflow 2 emits an event through a dataset alias only once the alias is in the metadata database,
            # where the DAG files' sync puts it (the scheduler's, or this), and `dags test` does not.
            airflow(env, "dags", "reserialize", log=WORK / "airflow-dags-reserialize.log")
        print(f"4. airflow dags test {DAG_ID} --conf '{json.dumps(conf)}'")
        started = time.monotonic()
        airflow(env, "dags", "test", DAG_ID, "--conf", json.dumps(conf), log=WORK / "airflow-dags-test.log")
        print(f"   finished in {time.monotonic() - started:.1f} s (log: .demo/airflow-dags-test.log)")

        runs = dag_runs(env)
        run_id = runs[0]["run_id"]
        states = airflow_json(env, "tasks", "states-for-dag-run", DAG_ID, run_id)
        print(f"5. DAG run {run_id}: {runs[0]['state']}")
        for task in sorted(states, key=lambda t: (str(t.get("start_date")), str(t["map_index"]))):
            index = "" if str(task["map_index"]) in ("", "-1", "None") else f"[{task['map_index']}]"
            print(f"   {task['task_id'] + index:36} {task['state']}")

        (read_set,) = client.list_read_sets(sequenceStoreId=store_id)["readSets"]
        metadata = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set["id"])
        print(f"6. Read set {metadata['id']}: {metadata['status']} ({metadata['fileType']})")
        reads_count = metadata["sequenceInformation"]["totalReadCount"]
        print(f"   reads {reads_count}, ETag algorithm {metadata['etag']['algorithm']}")
        matched = True
        for source, path in reads.items():
            local = hashlib.md5(gzip.decompress(path.read_bytes())).hexdigest()
            stored = metadata["etag"][source.lower()]
            ok = local == stored
            matched &= ok
            verdict = "== MD5 of uncompressed {}: match" if ok else "!= MD5 of uncompressed {}: MISMATCH"
            print(f"   {source} ETag {stored} " + verdict.format(path.name))
        uploads = client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"]
        print(f"   uploads left in progress: {len(uploads)}")
        counts = emulator_admin(endpoint, "quotas")["counts"]
        calls = sum(c["calls"] for c in counts.values())
        throttled = {operation: c["throttled"] for operation, c in counts.items() if c["throttled"]}
        print(f"   API calls: {calls}, throttled by the quotas: {sum(throttled.values())} {throttled or ''}".rstrip())
        success = runs[0]["state"] == "success" and metadata["status"] == "ACTIVE" and matched and not uploads
        print("Demo " + ("succeeded: the stored read set is the staged data." if success else "FAILED."))
        return 0 if success else 1
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
