"""Which device a pool worker trains on, which collective backend its group uses, and what a job
carries to worker nodes. One place, so tests can point a GPU-declaring node at the CPU.

    device = worker_device(use_gpu=True)      # "cuda:0" on a GPU node; "cpu" with GPU_AS_CPU_ENV set
    backend = torch_backend(use_gpu=True)     # "nccl" / "gloo"
    model = ddp_wrap(model, device, world)    # DDP over every rank (no-op for one worker)

A simulated cluster (Ray's fake multi-node autoscaler, tests/execution/cluster_sim.py) has nodes that
*declare* `GPU: 1`: Ray's scheduler places GPU workers there and sets `CUDA_VISIBLE_DEVICES`, but
torch sees no CUDA. With `CL_SIM_GPU_AS_CPU=1` in the job's environment those workers train on the
CPU with gloo, so everything except the CUDA kernels runs as on a real GPU cluster. Without it, a
worker that was given a GPU and cannot see one fails with a message naming its node.
"""
from __future__ import annotations

import json
import os
import socket

import torch

GPU_AS_CPU_ENV = "CL_SIM_GPU_AS_CPU"
# settings a job's driver hands to every task and actor it starts (Ray does not forward the
# submitter's environment to worker nodes): cloud credentials, the Hugging Face cache and
# offline switches, this project's own settings
FORWARDED_PREFIXES = ("AWS_", "HF_", "TRANSFORMERS_", "CL_SIM_")
NOT_FORWARDED = ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "HF_HOME")  # paths on the driver's disk


def gpu_as_cpu() -> bool:
    return os.environ.get(GPU_AS_CPU_ENV, "") not in ("", "0", "false")


def worker_device(use_gpu: bool) -> str:
    """The device this process trains on: its Ray-assigned GPU (CUDA numbers the visible devices
    from 0, so the first one), or the CPU when the phase asked for none or GPUs are simulated."""
    if not use_gpu or gpu_as_cpu():
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError(f"execution.use_gpu: true, but torch sees no CUDA device on node {socket.gethostname()} "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}, "
                           f"torch {torch.__version__}): install a CUDA build of torch on the GPU nodes")
    return "cuda:0"


def torch_backend(use_gpu: bool) -> str:
    return "nccl" if use_gpu and not gpu_as_cpu() else "gloo"


def ddp_wrap(model: torch.nn.Module, device: str, world_size: int) -> torch.nn.Module:
    """DistributedDataParallel over the process group Ray Train set up (identity for one worker).

    Every trainable parameter must take part in every loss (`phases.build_model` freezes those a
    kind never reads), so DDP runs without `find_unused_parameters` and its per-step graph walk."""
    if world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.device(device).index or 0] if device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=ids)


def runtime_record(device: str, world_size: int) -> dict:
    """Where a phase ran, for its store entry: device, torch build, CUDA version, worker count."""
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    return {"device": device, "device_name": name, "torch": torch.__version__, "cuda": torch.version.cuda,
            "workers": world_size, "node": socket.gethostname()}


def forwarded_env(environ: dict | None = None) -> dict[str, str]:
    """The driver's settings that tasks and actors on other nodes need (see FORWARDED_PREFIXES)."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k.startswith(FORWARDED_PREFIXES) and k not in NOT_FORWARDED}


def job_runtime_env(environ: dict | None = None) -> dict | None:
    """`ray.init(runtime_env=...)` for a driver: the forwarded settings as env vars of every task and
    actor of the job, on every node. Under `ray job submit` the job's own runtime env (e.g.
    `--runtime-env-json`) already carries some; Ray refuses the same key twice, so those are left out."""
    environ = os.environ if environ is None else environ
    env = forwarded_env(environ)
    try:
        injected = json.loads(environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")).get("runtime_env") or {}
    except ValueError:
        injected = {}
    env = {k: v for k, v in env.items() if k not in (injected.get("env_vars") or {})}
    return {"env_vars": env} if env else None
