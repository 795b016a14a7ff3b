"""Everything around the training steps, one small class per concern, called by the trainer's hooks."""

from .base import Callback
from .checkpoint import BestWeights, Checkpointer
from .divergence import DivergenceGuard
from .early_stopping import EarlyStopping
from .metrics_csv import MetricsCSV
from .progress import Progress
from .tensorboard import TensorBoard
from .threads import ThreadPolicy
from .time_budget import TimeBudget

__all__ = ["BestWeights", "Callback", "Checkpointer", "DivergenceGuard", "EarlyStopping", "MetricsCSV",
           "Progress", "TensorBoard", "ThreadPolicy",
           "TimeBudget"]
