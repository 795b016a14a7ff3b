"""The machine a benchmark ran on, named so that figures from different CPUs are never mixed up."""

from __future__ import annotations

import math
import os
import platform
import time

import torch

from ..training.runtime import cpu_has_bf16

# The CPU features that decide cnnlab's speed: AVX2 and AVX-512 float32 kernels, native bf16 (AVX512-BF16,
# or AMX), which training uses automatically (runtime.amp_dtype).
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def _proc_field(path: str, key: str) -> str | None:
    """The value of the first `key: value` line of a /proc file, or None (not Linux)."""
    try:
        with open(path) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), None)
    except OSError:
        return None


def cpu_flags() -> list[str]:
    """Which of FLAGS this CPU has (empty where /proc/cpuinfo is not there)."""
    have = set((_proc_field("/proc/cpuinfo", "flags") or "").split())
    return [f for f in FLAGS if f in have]


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def machine_info() -> dict:
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()
    family, model = _proc_field("/proc/cpuinfo", "cpu family"), _proc_field("/proc/cpuinfo", "model\t")
    if family and model:  # as lscpu names it: AMD family 25 is Zen 3 (model 1) and Zen 4 (model 17)
        cpu = f"{cpu} (family {family}, model {model})"
    kib = _proc_field("/proc/meminfo", "MemTotal")
    ram = round(int(kib.split()[0]) / 2**20, 1) if kib else None
    return {"cpu": cpu, "cpu_flags": cpu_flags(), "cpus": os.cpu_count(), "ram_gib": ram,
            "torch": torch.__version__, "cpu_bf16": cpu_has_bf16(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "load_average": load_average()}


def describe(m: dict) -> str:
    """One line: the CPU, its flags that matter, CPUs, memory, torch."""
    flags = " ".join(m.get("cpu_flags") or []) or "no AVX2"
    return f"{m['cpu']} [{flags}], {m['cpus']} CPUs, {m['ram_gib']} GiB, torch {m['torch']}"


def matmul_gflops(threads: int, dtype: torch.dtype = torch.float32, n: int = 1024, repeats: int = 7) -> float:
    """Best GFLOP/s of an n x n torch.mm at `threads` threads: the peak the FLOP floor divides by."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(n, n, generator=gen).to(dtype), torch.randn(n, n, generator=gen).to(dtype)
        torch.mm(a, b)
        best = math.inf
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            torch.mm(a, b)
            # The best run, and CPU time where it is shorter than wall time: on a shared machine the
            # scheduler's pauses must not lower the peak (and so the floor) below what the CPU can do.
            best = min(best, time.perf_counter() - t, (time.process_time() - c) / threads)
        return 2 * n**3 / best / 1e9
    finally:
        torch.set_num_threads(old)
