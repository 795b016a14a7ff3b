"""Where a training step of the seed models goes, layer by layer: the figures behind docs/benchmarks.md.

    .venv/bin/python benchmarks/layers.py [--threads 1] [--repeats 30]

1. every convolution of mnist-classifier, lenet5 and fastcnn alone, forward + backward at its training
   batch, in NCHW and channels-last, float32 and bf16 autocast: milliseconds and the GFLOP/s reached,
   against the torch.mm peak measured in the same run (the peak the FLOP floor divides by);
2. one whole training step of each model in the engine's form (channels-last, bf16 where the CPU has
   it), split by op with torch.profiler: how much is convolution, pooling, activations, optimiser.

Medians of interleaved repeats; the machine's load moves single figures by 10-30 %.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch
import torch.nn.functional as F

from cnnlab.bench import matmul_gflops
from cnnlab.models import channels_last, create_model
from cnnlab.training.runtime import amp_dtype, autocast

MODELS = {"mnist-classifier": 128, "lenet5": 128, "fastcnn": 256}  # the batch each is trained with


def convs(name: str, batch: int):
    """(label, input shape, conv module) for every Conv2d, with the input shape it sees in training."""
    model = create_model(name, (1, 28, 28), 10)
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, tuple(i[0].shape))))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    model(torch.zeros(2, 1, 28, 28))
    for h in hooks:
        h.remove()
    return [(f"{name} conv{k + 1} {m.in_channels}->{m.out_channels} k{m.kernel_size[0]}",
             (batch, *shape[1:]), m)
            for k, (m, shape) in enumerate(seen)]


def median_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def conv_table(repeats: int) -> None:
    peak32, peak16 = (matmul_gflops(torch.get_num_threads()),
                      matmul_gflops(torch.get_num_threads(), torch.bfloat16))
    print(f"torch.mm peak: {peak32:.1f} GFLOP/s fp32, {peak16:.1f} GFLOP/s bf16\n")
    print(f"{'convolution (fwd + bwd)':<34} {'MMAC':>6}  " + "  ".join(
        f"{k:>17}" for k in ("NCHW fp32", "NCHW bf16", "NHWC fp32", "NHWC bf16")))
    for name, batch in MODELS.items():
        for label, shape, conv in convs(name, batch):
            out = conv(torch.zeros(1, *shape[1:])).shape
            macs = (batch * out[1] * out[2] * out[3] * conv.in_channels
                    * conv.kernel_size[0] * conv.kernel_size[1])
            # the first layer needs no input gradient (its input is the data): 2 passes, else 3
            passes = 3 if shape[1] > 1 else 2
            cells = []
            for cl in (False, True):
                for dtype in (None, torch.bfloat16):
                    fmt = torch.channels_last if cl else torch.contiguous_format
                    c = conv.to(memory_format=fmt)
                    x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_(shape[1] > 1)

                    def step(c=c, x=x, dtype=dtype):
                        with autocast(torch.device("cpu"), dtype):
                            y = c(x)
                        y.float().sum().backward()

                    ms = median_ms(step, repeats)
                    cells.append(f"{ms:6.2f} ms {2 * passes * macs / ms / 1e6:5.1f} GF")
            print(f"{label:<34} {macs / 1e6:6.1f}  " + "  ".join(f"{c:>17}" for c in cells))


KINDS = {"convolution": ("convolution",), "pooling": ("pool",),
         "activation": ("tanh", "relu", "threshold", "clamp"), "batch norm": ("batch_norm",),
         "linear": ("mm", "addmm", "linear"), "optimizer": ("Optimizer", "_foreach")}


def step_breakdown(repeats: int) -> None:
    from torch.profiler import profile

    cpu = torch.device("cpu")
    amp = amp_dtype(cpu)
    print(f"\none training step in the engine's form (channels-last, {'bf16' if amp else 'fp32'}), "
          "by op (profiler):")
    for name, batch in MODELS.items():
        torch.manual_seed(0)
        model = channels_last(create_model(name, (1, 28, 28), 10))
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))

        def step(model=model, opt=opt, x=x, y=y):
            with autocast(cpu, amp):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for _ in range(5):
            step()
        with profile() as prof:
            for _ in range(repeats):
                step()
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / repeats / 1e3
        parts = defaultdict(float)
        for e in prof.key_averages():
            kind = next((k for k, keys in KINDS.items() if any(s in e.key for s in keys)), "other")
            parts[kind] += e.self_cpu_time_total / repeats / 1e3
        shares = ", ".join(f"{k} {v:.1f} ms ({100 * v / total:.0f} %)" for k, v in
                           sorted(parts.items(), key=lambda kv: -kv[1]))
        print(f"  {name} (batch {batch}): {total:.1f} ms = {shares}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    conv_table(args.repeats)
    step_breakdown(args.repeats)


if __name__ == "__main__":
    main()
