"""The fast path computes what a plain loop computes: same batches, same normalisation, same weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from helpers import cli
from torch.utils.data import DataLoader, TensorDataset

import cnnlab
from cnnlab.data import load_data
from cnnlab.errors import UserError
from cnnlab.models import ModelMeta, channels_last, create_model, load_weights, save_weights
from cnnlab.training import augment, runtime

SEED = 3
N_TRAIN = 640  # five batches of 128: a few steps, no partial batch


def _train_lenet5(fashion_dir, out, **kw):
    """cnnlab.train: lenet5 with plain SGD (so float rounding cannot flip Adam's sign-like updates)."""
    return cnnlab.train(model="lenet5", data=str(fashion_dir), epochs=1, limit=N_TRAIN, batch_size=128,
                        optimizer="sgd", lr=0.05, momentum=0.9, seed=SEED, threads=1, out=str(out),
                        progress=False, **kw)


def _reference_weights(fashion_dir, run) -> dict[str, torch.Tensor]:
    """The same training as a textbook loop: a DataLoader over a TensorDataset, one SGD step per batch.

    It shares nothing with the trainer but what defines the result: the run's split (split.json), the
    normalisation (the training images' mean and std), the initial weights (torch.manual_seed) and the
    batch order (a permutation from torch.Generator().manual_seed(seed * 100_003 + epoch)).
    """
    split = json.loads((run.path / "split.json").read_text())
    idx = torch.tensor(split["train_indices"])
    data = load_data(str(fashion_dir))
    x = data.train.x[idx].float() / 255
    mean, std = x.mean().item(), x.std(unbiased=False).item()
    loader = DataLoader(TensorDataset((x - mean) / std, data.train.y[idx]), batch_size=128,
                        sampler=torch.randperm(
                            len(idx), generator=torch.Generator().manual_seed(SEED * 100_003)).tolist())
    torch.manual_seed(SEED)
    model = create_model("lenet5", (1, 28, 28), 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert len(loader) == N_TRAIN // 128
    return model.state_dict()


def _max_diff(run, ref: dict[str, torch.Tensor]) -> float:
    trained, _ = load_weights(run.path / "last.safetensors")
    got = trained.state_dict()
    assert got.keys() == ref.keys()
    return max((got[k] - ref[k]).abs().max().item() for k in ref)


def test_trainer_matches_a_plain_dataloader_loop_in_float32(fashion_dir, tmp_path, monkeypatch):
    # float32 everywhere: results must agree to rounding
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    run = _train_lenet5(fashion_dir, tmp_path / "fp32")
    assert run.results["precision"] == "fp32"
    assert run.results["steps"] == N_TRAIN // 128
    assert torch.get_num_threads() == 1  # --threads is honoured
    ref = _reference_weights(fashion_dir, run)
    # channels-last kernels may sum in another order than NCHW ones: equal up to float32 rounding
    assert _max_diff(run, ref) < 1e-5
    # and the steps did move the weights, so agreeing is not trivial
    torch.manual_seed(SEED)
    init = create_model("lenet5", (1, 28, 28), 10).state_dict()
    assert max((ref[k] - init[k]).abs().max().item() for k in ref) > 1e-2


def test_bf16_fast_path_stays_close_to_the_float32_loop(fashion_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)  # force bf16 autocast, as on AVX512-BF16 CPUs
    run = _train_lenet5(fashion_dir, tmp_path / "bf16")
    assert run.results["precision"] == "bf16"
    ref = _reference_weights(fashion_dir, run)
    # bf16 keeps 8 bits of mantissa (relative error 2^-9 = 0.2 %) in the gradients; the five steps move
    # weights by up to ~0.05, so bf16 may shift them by ~1e-4 (3e-5 measured); a wrong batch would move 1e-2
    assert _max_diff(run, ref) < 1e-3
    assert run.results["test_accuracy"] > 0.3  # five steps from chance (0.1): it learned


def test_compiled_training_matches_the_plain_loop(fashion_dir, tmp_path):
    # --compile: the same steps through torch.compile's generated kernels (inductor, C++ on the CPU)
    run = _train_lenet5(fashion_dir, tmp_path / "compiled", compile=True, precision="fp32")
    assert run.results["steps"] == N_TRAIN // 128
    # fused kernels may sum in another order: equal up to float32 rounding
    assert _max_diff(run, _reference_weights(fashion_dir, run)) < 1e-5


def test_compile_without_a_compiler_is_one_clear_line_before_anything_is_written(tmp_path):
    r = cli("train", "--model", "lenet5", "--limit", "300", "--epochs", "1", "--compile",
            "--out", str(tmp_path / "run"), env={"CXX": str(tmp_path / "no-such-g++")})
    assert r.returncode == 2 and r.stderr.startswith("error: --compile: torch.compile does not work here")
    assert len(r.stderr.strip().splitlines()) == 1 and "drop --compile" in r.stderr
    assert not (tmp_path / "run").exists()


def test_flip_batch_flips_exactly_the_masked_images():
    x = torch.randn(64, 2, 5, 7, generator=torch.Generator().manual_seed(0))
    mask = augment.flip_mask(64, torch.Generator().manual_seed(11))
    out = augment.flip_batch(x, torch.Generator().manual_seed(11))
    assert 10 < int(mask.sum()) < 54  # about half, and both kinds present
    for i in range(64):
        want = x[i].flip(-1) if mask[i] else x[i]
        assert torch.equal(out[i], want), i
    assert not torch.equal(x[mask][0], x[mask][0].flip(-1))  # random images are not symmetric: flips show


def test_shift_batch_moves_each_image_by_whole_pixels_and_fills_with_black():
    mean, std = [0.5, 0.2], [0.25, 0.5]
    x = torch.randn(32, 2, 6, 8, generator=torch.Generator().manual_seed(1))
    out = augment.shift_batch(x, torch.Generator().manual_seed(3), mean, std, most=2)
    black = torch.tensor([-m / s for m, s in zip(mean, std)]).view(2, 1, 1)
    offsets = set()
    for i in range(32):  # exactly one offset (dy, dx) within +-2 explains each output image
        found = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                want = black.expand(2, 10, 12).clone()
                want[:, 2:8, 2:10] = x[i]
                if torch.equal(out[i], want[:, 2 + dy:8 + dy, 2 + dx:10 + dx]):
                    found.append((dy, dx))
        assert len(found) == 1, (i, found)
        offsets |= set(found)
    assert len(offsets) > 5  # each image gets its own offset
    both = augment.augment_batch("flip-shift", x, torch.Generator().manual_seed(3), mean, std)
    assert both.shape == x.shape and not torch.equal(both, x)


def test_choose_threads_takes_the_override_without_measuring(monkeypatch):
    def probe(n):
        raise AssertionError("an explicit thread count must not be second-guessed")

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert runtime.choose_threads(3, probe) == 3
    assert runtime.choose_threads(1, probe) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # as the user or torchrun set it
    assert runtime.choose_threads(None, probe) == 2
    assert runtime.choose_threads(1, probe) == 1  # --threads wins over the environment
    with pytest.raises(UserError, match="--threads 0"):
        runtime.choose_threads(0)


@pytest.mark.parametrize("times, cpus, want", [
    ({1: 1.0, 2: 0.5}, 3, 2),            # two threads twice as fast: take them (one CPU left free)
    ({1: 1.0, 2: 0.85}, 3, 1),           # 15 % is not worth holding another core
    ({1: 1.0, 2: 8.0}, 3, 1),            # another process is busy: a second thread is a brake
    ({1: 1.0, 2: 0.6, 3: 0.4}, 4, 3),
    ({1: 1.0, 2: 0.6, 4: 0.55, 7: 0.3}, 8, 7),
    ({1: 1.0, 2: 0.7, 4: 0.5, 5: 0.45}, 6, 4),
])
def test_choose_threads_picks_the_measured_fastest(monkeypatch, times, cpus, want):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cpus", lambda: cpus)
    asked = []

    def probe(n):
        asked.append(n)
        return times[n] * (1.5 if len(asked) % 5 == 0 else 1.0)  # an outlier now and then: medians ignore it

    assert runtime.choose_threads(None, probe) == want
    assert sorted(set(asked)) == sorted(times) and len(asked) == 7 * len(times)


@pytest.mark.parametrize("cpus", [1, 2])
def test_choose_threads_leaves_a_small_machine_one_thread(monkeypatch, cpus):
    # with every CPU taken, one busy process elsewhere stalls each op: on 2 vCPUs that was 8x slower
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cpus", lambda: cpus)
    assert runtime.choose_threads(None, lambda n: pytest.fail("nothing to measure")) == 1


def test_choose_threads_measures_with_its_own_probe(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 3)  # so that 1 and 2 threads are measured here
    runtime._measured_default.cache_clear()
    before = torch.get_num_threads()
    assert runtime.choose_threads() in (1, 2)
    assert torch.get_num_threads() == before  # measuring leaves the setting as it was; the caller applies it
    runtime._measured_default.cache_clear()


def test_channels_last_computes_the_same_and_saved_models_load_in_it(tmp_path):
    torch.manual_seed(0)
    model = create_model("fastcnn", (1, 28, 28), 10).eval()
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        want = model(x)
        fast = channels_last(model)
        got = fast(x)
    assert fast[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    assert channels_last(mlp) is mlp  # nothing to gain without convs
    meta = ModelMeta(spec=model.spec, input_shape=(1, 28, 28), classes=[str(i) for i in range(10)],
                     mean=[0.5], std=[0.5])
    save_weights(model, meta, tmp_path / "m.safetensors")
    loaded, _ = load_weights(tmp_path / "m.safetensors")  # what eval, predict, serve and export compute with
    assert loaded[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_amp_dtype(monkeypatch):
    cpu = torch.device("cpu")
    assert runtime.amp_dtype(cpu, "fp32") is None
    assert runtime.amp_dtype(cpu, "bf16") is torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    assert runtime.amp_dtype(cpu) is None  # emulated bf16 is slower than float32
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert runtime.amp_dtype(cpu) is torch.bfloat16
    with pytest.raises(UserError, match="--precision 'fp16'"):
        runtime.amp_dtype(cpu, "fp16")


def test_auto_precision_is_fp32_when_torch_is_held_to_avx2():
    code = "from cnnlab.training.runtime import cpu_has_bf16; print(cpu_has_bf16())"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"  # whatever the CPU's flags say: the AVX2 kernels have no bf16
