"""Why one intra-op thread beats two for small CNNs on a 2-vCPU VM: the measurements behind engine.choose_threads.

    .venv/bin/python benchmarks/threads.py [--model fastcnn] [--steps 30] [--profile]

1. the CPU topology as the guest sees it (are the two vCPUs hyper-thread siblings?);
2. the two vCPUs' independence: one torch.mm process alone, then two at once (real cores keep their speed);
3. training steps at 1 and 2 threads, each in a fresh process, under libgomp's default spin-wait,
   under OMP_WAIT_POLICY=PASSIVE and under shorter spins (GOMP_SPINCOUNT), with how busy the rest of the
   machine was meanwhile (/proc/stat); `--load N` runs N other busy processes meanwhile (a one-thread
   matrix-multiply loop each), as another job on the machine would;
4. with --profile, the per-op times at 1 and 2 threads (torch.profiler): which ops split well, which do not.
"""  # noqa: E501 -- line 1 is the --help description

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, os, sys, time, torch, torch.nn.functional as F
from cnnlab.models import channels_last, create_model
from cnnlab.training.runtime import amp_dtype, autocast
name, threads, steps, batch, what = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                                     sys.argv[5])
torch.set_num_threads(threads)
if what == "mm":
    a = torch.randn(1024, 1024); b = torch.randn(1024, 1024); a @ b
    t = time.perf_counter(); n = 0
    while time.perf_counter() - t < 3.0:
        a @ b; n += 1
    print(json.dumps({"gflops": 2 * 1024**3 * n / (time.perf_counter() - t) / 1e9})); sys.exit()
torch.manual_seed(0)
dev = torch.device("cpu")
model = channels_last(create_model(name, (1, 28, 28), 10).to(dev))
amp = amp_dtype(dev, os.environ.get("CNNLAB_BENCH_PRECISION", "auto"))
x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
opt = torch.optim.AdamW(model.parameters(), 1e-3)
def step():
    with autocast(dev, amp):
        loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(5): step()
if what == "profile":
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(steps): step()
    rows = {e.key: e.self_cpu_time_total / steps / 1e3 for e in p.key_averages()}
    print(json.dumps(rows)); sys.exit()
wall, cpu = time.perf_counter(), time.process_time()
for _ in range(steps): step()
print(json.dumps({"ms_per_step": 1e3 * (time.perf_counter() - wall) / steps,
                  "cpu_ms_per_step": 1e3 * (time.process_time() - cpu) / steps}))
"""


HOG = "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True:\n    a @ a\n"


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat: user+nice+system+irq+softirq+steal."""
    f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
    return busy, sum(f[:8])


def child(args: list[str], env: dict | None = None) -> tuple[dict, float]:
    """Run CHILD in a fresh process (OpenMP reads its settings at start); returns its JSON and the
    machine's busy fraction (all CPUs) while it ran, the child's own share included."""
    b0, t0 = machine_busy()
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    b1, t1 = machine_busy()
    return json.loads(out.stdout.strip().splitlines()[-1]), (b1 - b0) / max(t1 - t0, 1)


def topology() -> list[str]:
    lines = []
    for cpu in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*")):
        topo = cpu / "topology"
        if topo.is_dir():
            lines.append(f"{cpu.name}: core {(topo / 'core_id').read_text().strip()}, "
                         f"siblings {(topo / 'thread_siblings_list').read_text().strip()}")
    info = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), "?")
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "").split()
    lines.insert(0, f"{model}, {os.cpu_count()} vCPUs, hypervisor: {'hypervisor' in flags}, "
                    f"avx512_bf16: {'avx512_bf16' in flags}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fastcnn")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--load", type=int, default=0, help="other busy processes running meanwhile")
    p.add_argument("--spins", default="", help="GOMP_SPINCOUNT values to try too, e.g. 1000,30000")
    p.add_argument("--precision", default="auto", help="auto | fp32 (what the timed steps compute in)")
    a = p.parse_args()
    print("\n".join(topology()))

    alone, _ = child(["-", "1", "0", "0", "mm"])
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, "-", "1", "0", "0", "mm"], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    pair = [json.loads(pr.communicate()[0].strip().splitlines()[-1])["gflops"] for pr in procs]
    print(f"\ntorch.mm 1024^2, 1 thread: alone {alone['gflops']:.0f} GFLOP/s; two processes at once: "
          f"{pair[0]:.0f} + {pair[1]:.0f} GFLOP/s (hyper-thread siblings would share one core's units)")

    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(a.load)]
    print(f"\n{a.model}, batch {a.batch}, {a.precision}, {a.steps} steps per cell, {a.load} other busy "
          "process(es): wall ms/step (CPU ms/step), machine busy %")
    policies = [("libgomp default (spin)", {}), ("OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"})]
    policies += [(f"GOMP_SPINCOUNT={n}", {"GOMP_SPINCOUNT": n}) for n in a.spins.split(",") if n]
    for label, env in policies:
        env = {**env, "CNNLAB_BENCH_PRECISION": a.precision}
        cells = []
        for threads in (1, 2):
            r, busy = child([a.model, str(threads), str(a.steps), str(a.batch), "time"], env)
            cells.append(f"{threads} thr {r['ms_per_step']:7.1f} ({r['cpu_ms_per_step']:6.1f}) "
                         f"{100 * busy:4.0f}%")
        print(f"  {label:<26} " + "   ".join(cells), flush=True)
    for h in hogs:
        h.kill()

    if a.profile:
        one, _ = child([a.model, "1", str(a.steps), str(a.batch), "profile"])
        two, _ = child([a.model, "2", str(a.steps), str(a.batch), "profile"])
        top = sorted(one, key=one.get, reverse=True)[:12]
        print("\nper op, ms per step (self CPU time of the calling thread):")
        print(f"  {'op':<45} {'1 thread':>9} {'2 threads':>10}")
        for k in top:
            print(f"  {k[:45]:<45} {one[k]:9.2f} {two.get(k, float('nan')):10.2f}")


if __name__ == "__main__":
    main()
