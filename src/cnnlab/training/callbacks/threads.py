"""Both cores, safely: take the second CPU while it is free, give it back as soon as it is not.

On a 2-vCPU machine two intra-op threads make a small CNN's step 1.35-1.75x faster while nothing else
runs, and 8-12x slower as soon as another process wants a CPU (docs/benchmarks.md: every op waits for
the thread that shares its vCPU). So a run starts at one thread and, every so often, tries two for a few
steps, measuring only the training step itself (not validation or checkpoints):

- two threads stay if their median step is at least 13% faster than one thread's recent median;
- a probe stops at its first step that is more than twice one thread's median (the machine is busy),
  and the next probe waits twice as long (up to MAX_WAIT steps), so a busy machine costs a slow step
  now and then;
- while at two threads, a step more than 1.8x their own median means something else started: back to one
  thread at once.

Changing the thread count changes float summation order, so a run under this policy does not repeat bit
for bit; `--threads N` pins the count (and a resumed run keeps the one it started with).
"""

from __future__ import annotations

import statistics

import torch

from .base import Callback

PROBE_STEPS = 5  # steps at two threads a probe measures, after one that builds oneDNN's kernels
FIRST_WAIT, MAX_WAIT = 30, 1000  # steps before the first probe, and the longest wait between probes
KEEP, COLLAPSE, ABORT = 0.87, 1.8, 2.0


class ThreadPolicy(Callback):
    def __init__(self, most: int = 2):
        self.most = most  # the thread count tried besides one
        self.one: list[float] = []  # recent step seconds at one thread
        self.many: list[float] = []  # recent step seconds at `most` threads
        self.probing, self.skip = False, False
        self.wait, self.next_probe = FIRST_WAIT, FIRST_WAIT
        self.switches = 0  # how often the count changed
        self.steps_at_most = 0

    def _set(self, n: int) -> None:
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
            self.switches += 1

    def on_fit_start(self, t) -> None:
        self._set(1)
        self.next_probe = t.state.global_step + FIRST_WAIT

    def on_step_end(self, t) -> None:
        seconds, step = t.last_step_seconds, t.state.global_step
        if torch.get_num_threads() == 1:
            self.one = (self.one + [seconds])[-20:]
            if step >= self.next_probe and len(self.one) >= 5:
                self._set(self.most)
                self.probing, self.skip, self.many = True, True, []
            return
        self.steps_at_most += 1
        if self.skip:  # the first step at a new thread count builds oneDNN's kernels for it
            self.skip = False
            return
        one = statistics.median(self.one)
        if self.probing:
            if seconds > ABORT * one:  # the machine is busy: stop at the first sign of it
                return self._give_back(step)
            self.many.append(seconds)
            if len(self.many) >= PROBE_STEPS:
                self.probing = False
                if statistics.median(self.many) >= KEEP * one:
                    self._give_back(step)
                else:
                    self.wait = FIRST_WAIT
            return
        if seconds > COLLAPSE * statistics.median(self.many):  # something else started
            return self._give_back(step)
        self.many = (self.many + [seconds])[-20:]

    def _give_back(self, step: int) -> None:
        self._set(1)
        self.probing, self.many = False, []
        self.next_probe = step + self.wait
        self.wait = min(2 * self.wait, MAX_WAIT)
