"""Run ``poshuk index --ray`` on a local two-node Ray cluster and take its worker node away mid-run.

A script, not a fixture: Ray's ``Cluster`` wants the main thread and starts processes that
outlive a test that fails, so the test runs this in a process of its own and reads one JSON
line: whether the node died while the run was encoding, and how the run ended.

    python -m tests.support.ray_worker_loss SOURCE INDEX
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _actor_running() -> bool:
    """Whether an encoder actor's process exists (Ray names its process after the actor class)."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"EncodeGroups" in (proc / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def main(source: str, index: str) -> dict[str, object]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        worker = cluster.add_node(num_cpus=4)  # 4 logical CPUs: Ray Data's own tasks also need a CPU
        cluster.wait_for_nodes()
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSHUK_") or k == "POSHUK_HOME"}
        env["POSHUK_BATCH_SIZE"] = "1"  # four articles a group: many groups, so the loss lands mid-run
        poshuk = str(Path(sys.executable).with_name("poshuk"))
        run = subprocess.Popen(
            [poshuk, "index", source, "--index", index, "--no-progress", "--ray", cluster.address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 120
        while not _actor_running() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(4.0)  # the actor has loaded the model and is encoding
        killed_mid_run = run.poll() is None
        cluster.remove_node(worker, allow_graceful=False)
        cluster.add_node(num_cpus=4)  # a replacement, as an autoscaler would start
        stdout, stderr = run.communicate(timeout=300)
        return {"killed_mid_run": killed_mid_run, "rc": run.returncode, "stdout": stdout, "stderr": stderr[-2000:]}
    finally:
        cluster.shutdown()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
