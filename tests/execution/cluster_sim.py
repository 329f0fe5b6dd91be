"""A simulated multi-node GPU cluster for tests: Ray's own fake multi-node autoscaler.

    with SimCluster(head_cpus=1, gpu_nodes={"CPU": 1, "GPU": 1}, max_gpu_nodes=2) as c:
        c.submit(["python", "experiments/task_order.py", "--smoke-test"], env_vars={...})
        c.nodes()                       # what Ray reports: the head, then GPU nodes as they scale up

The head has CPUs only; the worker node type declares `GPU: 1` and starts at `min_workers: 0`, so
GPU nodes exist only once the autoscaler starts them for a request. Ray's scheduler treats those
GPUs as real (placement, `CUDA_VISIBLE_DEVICES`); torch sees no CUDA, so jobs set
`CL_SIM_GPU_AS_CPU=1` (`cl_sim.execution.devices`) and everything but the CUDA kernels runs.

Why not `ray.cluster_utils.AutoscalingCluster` as is: the PyPI wheel lacks the
`fake_multi_node/example.yaml` it reads (FileNotFoundError), and its `start()`/`shutdown()` run
`ray stop --force`, which ends every Ray process on the machine. This head is private instead: its
own temp folder, free ports, `--block` in the background; stopping it stops the processes whose
command line names its session folder, nothing else. What it does not simulate: separate disks
(every fake node shares this machine's file system, so a node-local path would still be reachable:
the tests use an S3 store), network partitions, real GPUs.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent  # the venv's `ray` command
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def autoscaler_config(head_resources: dict, worker_types: dict, gcs_address: str, node_temp_root: str) -> dict:
    """The fake provider's cluster config, built here (the wheel lacks Ray's example.yaml)."""
    types = {name: {"min_workers": 0, "node_config": {}, **spec} for name, spec in worker_types.items()}
    types["ray.head.default"] = {"resources": head_resources, "node_config": {}, "max_workers": 0}
    return {
        "cluster_name": "cl-sim-fake", "max_workers": sum(t.get("max_workers", 1) for t in worker_types.values()),
        # as Ray's fake_multinode defaults: no node updaters (nothing to ssh into), node ids as ips
        "provider": {"type": "external", "module": "sim_provider.NodeLocalFakeProvider",
                     "gcs_address": gcs_address, "node_temp_root": node_temp_root,
                     "disable_node_updaters": True, "disable_launch_config_check": True,
                     "use_node_id_as_ip": True},
        "upscaling_speed": 1.0, "idle_timeout_minutes": 0.2, "auth": {"ssh_user": "ubuntu"},
        "available_node_types": types, "head_node_type": "ray.head.default",
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


class SimCluster:
    def __init__(self, head_cpus: int = 1, gpu_node: dict | None = None, max_gpu_nodes: int = 2):
        self.tmp = Path(tempfile.mkdtemp(prefix="rsim.", dir="/tmp"))  # short: Ray's socket paths live under it
        self.port, self.dash = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.api = f"http://127.0.0.1:{self.dash}"
        workers = {"gpu_worker": {"resources": gpu_node or {"CPU": 1, "GPU": 1}, "max_workers": max_gpu_nodes}}
        self.config = autoscaler_config({"CPU": head_cpus}, workers, self.address, str(self.tmp / "nodes"))
        self.head_cpus = head_cpus
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict:
        """The client side of the cluster (token auth on, as `ray start --head` sets it up)."""
        return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_API_SERVER_ADDRESS": self.api,
                "RAY_ADDRESS": self.address, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    def start(self, timeout: float = 180.0) -> "SimCluster":
        cfg = self.tmp / "autoscaler.json"
        cfg.write_text(json.dumps(self.config))
        env = {k: v for k, v in self.env().items() if k not in ("RAY_ADDRESS",) and not k.startswith("AWS_")}
        env.update({"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",  # the provider module:
                    "PYTHONPATH": os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])})
        cmd = [str(BIN / "ray"), "start", "--head", "--block", f"--num-cpus={self.head_cpus}", "--num-gpus=0",
               f"--port={self.port}", f"--temp-dir={self.tmp}", f"--autoscaling-config={cfg}",
               "--include-dashboard=true", f"--dashboard-port={self.dash}", "--disable-usage-stats",
               f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}"]
        log = open(self.tmp / "head.log", "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start failed:\n{(self.tmp / 'head.log').read_text()[-3000:]}")
            if subprocess.run([str(BIN / "ray"), "job", "list"], env=self.env(), capture_output=True).returncode == 0:
                return self
            time.sleep(1)
        raise TimeoutError(f"the simulated head did not come up in {timeout:.0f} s")

    def submit(self, entrypoint: list[str], env_vars: dict, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
        """`ray job submit --working-dir . --runtime-env-json {env_vars} -- entrypoint` (waits)."""
        cmd = [str(BIN / "ray"), "job", "submit", "--working-dir", ".",
               "--runtime-env-json", json.dumps({"env_vars": env_vars}), "--", *entrypoint]
        return subprocess.run(cmd, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout)

    def nodes(self) -> list[dict]:
        """[{node_id, alive, resources}] as Ray reports them (asked from a fresh process)."""
        code = ("import json, ray; ray.init(address='{a}', logging_level='ERROR'); "
                "print(json.dumps([{{'node_id': n['NodeID'], 'alive': n['Alive'], 'resources': n['Resources']}} "
                "for n in ray.nodes()]))").format(a=self.address)
        out = subprocess.run([sys.executable, "-c", code], env=self.env(), capture_output=True, text=True,
                             timeout=120, check=True)
        # the JSON line, not a log line Ray may print after it at exit
        return json.loads([line for line in out.stdout.splitlines() if line.startswith("[")][-1])

    def stop(self) -> None:
        """Stop this cluster only: the head's process group, then anything still naming its folder
        (the fake nodes' raylets are the autoscaler's children)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        subprocess.run(["pkill", "-9", "-f", str(self.tmp)], capture_output=True)
        for _ in range(5):
            shutil.rmtree(self.tmp, ignore_errors=True)
            if not self.tmp.exists():
                break
            time.sleep(1)

    def __enter__(self) -> "SimCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
