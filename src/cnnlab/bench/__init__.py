"""`cnnlab bench`: cnnlab beside the seeds' DataLoader loop and the recipes people start from, in one process.

    machine.py      the CPU, its flags, the matmul peak      seed_loop.py   the seeds' loop
    cnnlab_side.py  one epoch, time budgets, inference       peers.py       Keras, pytorch/examples
    suite.py        run_bench: every section                 report.py      the tables as text

docs/benchmarks.md records full runs, with the machine named.
"""

from .cnnlab_side import first_crossing
from .machine import machine_info, matmul_gflops
from .report import format_report, format_row
from .suite import BenchOptions, run_bench

__all__ = ["BenchOptions", "first_crossing", "format_report", "format_row", "machine_info", "matmul_gflops",
           "run_bench"]
