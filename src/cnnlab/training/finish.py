"""The end of a run: test the best weights, then write the final weights, the plots and results.json.

results.json goes last: a run directory is finished exactly when it exists (rundir.is_finished).
"""

from __future__ import annotations

from pathlib import Path

from ..data import DataSet, normalize
from ..files import write_json
from ..models import BACKBONES, load_weights, predictor, save_weights
from ..models.evaluate import classification_report, infer
from ..viz.plots import save_confusion, save_curves
from .callbacks import ThreadPolicy, TimeBudget
from .trainer import Trainer


def finish_run(t: Trainer, data: DataSet, n_train: int) -> None:
    """Rank 0 only: everything a finished run directory holds beyond what training wrote."""
    cfg, state, out, meta = t.cfg, t.state, t.out, t.meta
    best_path = out / "best.safetensors"
    best = load_weights(best_path, device=str(t.dist.device))[0] if best_path.exists() else t.model
    x_test = normalize(data.test.x.float().div_(255), meta).to(t.dist.device)
    report = classification_report(infer(predictor(best, meta.tta), x_test), data.test.y, data.classes)
    results = {
        "test_accuracy": report["test_accuracy"], "test_loss": report["test_loss"],
        "best_val_accuracy": None if state.best_val_accuracy is None else round(state.best_val_accuracy, 6),
        "best_step": state.best_step, "epochs": state.epoch, "steps": state.global_step,
        "early_stopped": state.early_stopped, "train_seconds": round(state.train_seconds, 3),
        "params": sum(p.numel() for p in t.model.parameters()), "model": cfg.model, "data": data.name,
        "classes": data.classes, "device": str(t.dist.device), "processes": t.dist.world,
        "threads": state.threads, "precision": state.precision, "train_samples": n_train,
        "test_samples": report["test_samples"],
        "per_class": report["per_class"], "confusion_matrix": report["confusion_matrix"],
    }
    if cfg.pretrained:
        results["pretrained"] = cfg.weights or BACKBONES[cfg.model].source
    if t.data.class_weights is not None:
        weights = t.data.class_weights.tolist()
        results["class_weights"] = {c: round(w, 6) for c, w in zip(data.classes, weights)}
    policy = next((cb for cb in t.callbacks if isinstance(cb, ThreadPolicy)), None)
    if policy is not None:  # how the adaptive policy used the second CPU (this session)
        results["threads"] = f"1-{policy.most}"
        results["thread_policy"] = {"most": policy.most, "switches": policy.switches,
                                    "steps_at_most": policy.steps_at_most}
    budget = next((cb for cb in t.callbacks if isinstance(cb, TimeBudget)), None)
    if budget is not None:  # what the budget bought: the schedule it chose (epochs may end part-way)
        results["time_budget"] = {"seconds": budget.seconds, "steps": state.global_step,
                                  "epochs": round(state.global_step / t.steps_per_epoch, 2)}
    meta.extra = {"test_accuracy": results["test_accuracy"]}
    save_weights(t.model, meta, out / "last.safetensors")
    save_weights(best, meta, best_path)
    title = Path(cfg.model).stem
    save_curves(state.rows, out / "plots", title=title)
    save_confusion(results["confusion_matrix"], data.classes, out / "plots" / "confusion_matrix.png",
                   title=title)
    if budget is not None:  # everything up to here, set-up and the final test included
        results["time_budget"]["used_seconds"] = round(budget.elapsed(t), 2)
    write_json(out / "results.json", results)

