"""Where and how training computes: the device, the CPU thread policy, the memory format, mixed precision,
and whether torch.compile works here.

Why each choice is what it is, with the measurements, is in docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import UserError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible here; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps: Apple's MPS is not available here; use --device auto or cpu")
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


# --- CPU threads ----------------------------------------------------------------------------------------

def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's share), split over torchrun
    ranks."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, cpus // int(os.environ.get("WORLD_SIZE", "1")))


def choose_threads(requested: int | None = None, probe: Callable[[int], float] | None = None) -> int:
    """CPU intra-op threads for training small CNNs: `requested` (--threads), else $OMP_NUM_THREADS, else
    measured.

    Each op of a small CNN takes 0.05-5 ms and OpenMP splits every one of them statically, so a step waits
    for its slowest thread at every op. On an idle 2-vCPU VM two threads were 1.35-1.75x faster than one;
    as soon as one other process wanted a CPU they were 8-12x slower: the thread that shares its vCPU
    with that process holds up every op for a scheduler time slice while libgomp's other thread spins
    (docs/benchmarks.md). So one CPU is always left to the rest of the machine, and among 1 thread and
    powers of two up to usable CPUs - 1, `probe(n)` (default: one training step of a small conv net),
    timed interleaved, picks; more threads are taken only when their median is at least 20 % faster.
    The measurement takes about 0.2 s, once per process; on 1-2 CPUs there is nothing to measure.
    """
    if requested is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        requested = int(os.environ["OMP_NUM_THREADS"])  # the user (or a launcher like torchrun) already chose
    if requested is not None:
        if requested < 1:
            raise UserError(f"--threads {requested}: must be a whole number >= 1")
        return requested
    most = min(usable_cpus() - 1, 16)
    if most <= 1:
        return 1
    candidates = [1]
    while candidates[-1] * 2 <= most:
        candidates.append(candidates[-1] * 2)
    if candidates[-1] != most:
        candidates.append(most)
    if probe is None:
        return _measured_default(tuple(candidates))
    return _measured_threads(candidates, probe)


def adaptive_threads(requested: int | None, device: torch.device, world: int, engine: str) -> int | None:
    """The thread count to try besides one during training (callbacks/threads.py), or None for a fixed count.

    Only where choose_threads would leave a CPU idle for want of knowing whether it is free: a 2-CPU
    machine, one process on the CPU, no --threads and no $OMP_NUM_THREADS (a user's or torchrun's choice)."""
    if (requested is not None or os.environ.get("OMP_NUM_THREADS") or device.type != "cpu" or world > 1
            or engine != "torch" or usable_cpus() != 2):
        return None
    return 2


def _measured_threads(candidates: list[int], probe: Callable[[int], float], rounds: int = 7) -> int:
    samples: dict[int, list[float]] = {n: [] for n in candidates}
    for _ in range(rounds):  # interleaved, so a burst of load elsewhere hits every candidate alike
        for n in candidates:
            samples[n].append(probe(n))
    median = {n: statistics.median(v) for n, v in samples.items()}
    best = 1
    for n in candidates[1:]:
        if median[n] < 0.8 * median[best]:
            best = n
    return best


@functools.cache
def _measured_default(candidates: tuple[int, ...]) -> int:
    """choose_threads' measurement with the default probe, done once per process."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 16, 14, 14, generator=gen)
    w1 = torch.randn(32, 16, 3, 3, generator=gen, requires_grad=True)
    w2 = torch.randn(32, 32, 3, 3, generator=gen, requires_grad=True)
    old = torch.get_num_threads()

    def step():  # conv-ReLU-conv-ReLU-pool at 14x14, 16-32 channels, batch 32: a small CNN's typical op sizes
        h = F.max_pool2d(F.relu(F.conv2d(F.relu(F.conv2d(x, w1, padding=1)), w2, padding=1)), 2)
        h.square().mean().backward()

    def probe(n: int) -> float:
        torch.set_num_threads(n)
        t = time.perf_counter()
        step()
        step()
        return time.perf_counter() - t

    try:
        for n in candidates:  # oneDNN builds its kernels on first use, per thread count
            torch.set_num_threads(n)
            step()
        return _measured_threads(list(candidates), probe)
    finally:
        torch.set_num_threads(old)


# --- memory format and precision --------------------------------------------------------------------------

@functools.cache
def cpu_has_bf16() -> bool:
    """Native bfloat16 arithmetic (AVX512-BF16 or AMX): only then is bf16 autocast faster than float32.

    Not when PyTorch is held to AVX2 (ATEN_CPU_CAPABILITY=avx2, as benchmarks do to stand in for an
    AVX2-only CPU): its kernels then cannot use the bf16 instructions."""
    if torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "AVX2"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype to train and evaluate in: None means float32.

    "auto": bfloat16 on CUDA GPUs that support it and on CPUs with native bf16 (convs ran 1.3-1.8x
    faster with the same accuracy, docs/benchmarks.md), else float32. bf16 keeps float32's exponent
    range, so no loss scaling is needed. "fp32" and "bf16" force a choice.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise UserError(f"--precision {precision!r}: choose one of auto, fp32, bf16")
    if device.type == "cuda":  # native only: before compute capability 8 bf16 is emulated, and slow
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_bf16() else None
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass and loss (backward follows it); a no-op for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def check_compile(device: torch.device) -> None:
    """Compile a one-line function, so that `--compile` without a working toolchain (a C++ compiler for the
    CPU, Triton for GPUs) fails at once with one line, not with a traceback after the data is loaded."""
    try:
        torch.compile(lambda x: x * 2 + 1)(torch.ones(4, device=device))
    except Exception as e:  # noqa: BLE001 -- inductor raises many kinds: no compiler, a failed build, no Triton
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"--compile: torch.compile does not work here ({first}); it needs a C++ compiler "
                        "(g++) on the CPU or Triton on a GPU: install it or drop --compile") from None
