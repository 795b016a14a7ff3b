"""The training state is one typed object; it reads the checkpoints cnnlab 0.1.0 wrote."""

from __future__ import annotations

from pathlib import Path

from cnnlab.training.checkpoint import load_checkpoint
from cnnlab.training.state import TrainState

LEGACY = Path(__file__).parent / "fixtures" / "legacy-0.1.0"


def test_round_trip():
    s = TrainState(epoch=2, global_step=40, best_val_accuracy=0.9, rows=[{"step": 20}], threads=2,
                   precision="bf16")
    t = TrainState()
    t.load_state_dict(s.state_dict())
    assert t == s
    t.rows.append({"step": 40})
    assert s.rows == [{"step": 20}]  # a copy, not shared


def test_reads_a_0_1_0_checkpoint():
    state = TrainState()
    state.load_state_dict(load_checkpoint(LEGACY / "killed" / "checkpoints" / "last.pt")["state"])
    assert (state.epoch, state.step_in_epoch, state.global_step) == (0, 14, 14)
    assert (round(state.best_val_accuracy, 6) == 0.347222 and state.best_train_loss is None
            and state.best_step == 11)


def test_0_1_0_kept_minus_the_loss_when_there_was_no_validation_split():
    none_yet, no_val = TrainState(), TrainState()
    none_yet.load_state_dict({"best_val_accuracy": -1.0})
    no_val.load_state_dict({"best_val_accuracy": -0.7})
    assert (none_yet.best_val_accuracy, none_yet.best_train_loss) == (None, None)
    assert (no_val.best_val_accuracy, no_val.best_train_loss) == (None, 0.7)
