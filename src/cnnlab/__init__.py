"""cnnlab: from "what is a convolution" to a trained, inspected, exported and served CNN classifier."""

from .config import TrainConfig
from .errors import UserError
from .models import create_model, list_models
from .run import Run, load_run
from .spec import build_model
from .train import train

__all__ = ["Run", "TrainConfig", "UserError", "build_model", "create_model", "list_models", "load_run", "train"]
__version__ = "0.1.0"
