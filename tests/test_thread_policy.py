"""The adaptive thread policy, driven by step times as a machine would give them: it takes the second CPU
when two threads are faster, gives it back the moment the machine gets busy, and backs off its probes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from cnnlab.training.callbacks import threads as policy_mod
from cnnlab.training.callbacks.threads import ThreadPolicy


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def drive(policy: ThreadPolicy, step_time, steps: int) -> list[int]:
    """Run `steps` steps; step_time(threads, step) -> seconds. The thread count at each step."""
    t = SimpleNamespace(state=SimpleNamespace(global_step=0), last_step_seconds=0.0)
    policy.on_fit_start(t)
    seen = []
    for step in range(1, steps + 1):
        n = torch.get_num_threads()
        t.state.global_step, t.last_step_seconds = step, step_time(n, step)
        seen.append(n)
        policy.on_step_end(t)
    return seen


def test_an_idle_machine_gets_both_cores():
    seen = drive(ThreadPolicy(2), lambda n, s: 0.040 if n == 1 else 0.026, 200)  # 2 threads 1.5x faster
    assert seen[:policy_mod.FIRST_WAIT] == [1] * policy_mod.FIRST_WAIT  # it starts safe
    assert seen[-100:] == [2] * 100  # and keeps the second core once measured faster


def test_a_busy_machine_keeps_one_thread_and_probes_less_and_less():
    p = ThreadPolicy(2)
    seen = drive(p, lambda n, s: 0.040 if n == 1 else 0.400, 3000)  # 2 threads collapse 10x
    probes = [i for i in range(1, len(seen)) if seen[i] == 2 and seen[i - 1] == 1]
    slow_steps = sum(1 for n in seen if n == 2)
    assert slow_steps <= 2 * len(probes)  # each probe ends at its first slow step (plus the kernel step)
    gaps = [b - a for a, b in zip(probes, probes[1:])]
    assert gaps == sorted(gaps) and gaps[-1] >= policy_mod.MAX_WAIT  # waits double, up to the cap
    assert 100 * slow_steps * 0.400 / (len(seen) * 0.040) < 15  # overhead under 15 % of the run


def test_it_gives_the_core_back_when_another_job_starts():
    def step_time(n, s):  # idle until step 150, then another process takes a CPU
        if s < 150:
            return 0.040 if n == 1 else 0.026
        return 0.041 if n == 1 else 0.300

    seen = drive(ThreadPolicy(2), step_time, 400)
    assert seen[140:149] == [2] * 9
    assert seen[151] == 1 and seen[152:].count(2) <= 8  # back at once; then a few short probes
