"""Fine-tuning a pretrained backbone on a real two-class photo folder, against the frozen-features baseline.

    .venv/bin/python benchmarks/finetune.py                       # the photo set of tests/photo_set.py
    .venv/bin/python benchmarks/finetune.py --data ~/hymenoptera  # any train/<class>, test/<class> folder
    .venv/bin/python benchmarks/finetune.py --threads 2 -- --epochs 4   # options after -- go to cnnlab train

Three numbers, each from one process on this machine:
1. `cnnlab train --data DIR --pretrained` (the offline default, EfficientNet-Lite0): test accuracy and the
   trainer's own train_seconds (both phases, validation included).
2. `cnnlab predict` on every test photo: the photos it gets wrong must be exactly those `cnnlab mistakes`
   (eval's scoring of the run's test split) lists.
3. The baseline the issue set: scikit-learn's LogisticRegression on the same backbone's frozen 224-px
   features of the training photos, no augmentation.
Accuracy does not depend on the machine's load; seconds do (docs/benchmarks.md says how to measure).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the photo set's builder lives beside the tests that use it


def baseline(data: Path, threads: int) -> dict:
    """Logistic regression on frozen, pooled EfficientNet-Lite0 features (224 px, ImageNet statistics)."""
    from sklearn.linear_model import LogisticRegression

    from cnnlab.data import load_data, normalize
    from cnnlab.data.channels import as_colour
    from cnnlab.models import PretrainedNet, imagenet_body_state
    from cnnlab.models.evaluate import infer

    torch.set_num_threads(threads)
    net = PretrainedNet("efficientnet-lite0", (3, 224, 224), 2)
    net.body.load_state_dict(imagenet_body_state("efficientnet-lite0"))
    ds = as_colour(load_data(str(data), image_size=224))
    meta = argparse.Namespace(mean=list(net.backbone.mean), std=list(net.backbone.std))
    start = time.perf_counter()
    f_train, f_test = (infer(net.body, normalize(x.float() / 255, meta), 64).numpy()
                       for x in (ds.train.x, ds.test.x))
    seconds = time.perf_counter() - start
    clf = LogisticRegression(max_iter=5000).fit(f_train, ds.train.y.numpy())
    return {"test_accuracy": float((clf.predict(f_test) == ds.test.y.numpy()).mean()),
            "feature_seconds": round(seconds, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a photo folder (default: build tests/photo_set.py's into a temp folder)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for training and the baseline")
    p.add_argument("--out", default=None, help="run directory (default: a temp folder)")
    p.add_argument("train_args", nargs="*", help="more `cnnlab train` options, after --")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cnnlab-finetune-"))
    if a.data:
        data = Path(a.data)
    else:
        from photo_set import build

        data = build(tmp / "grass-gravel")
    out = Path(a.out) if a.out else tmp / "run"
    cmd = [sys.executable, "-m", "cnnlab", "train", "--data", str(data), "--pretrained", "--out", str(out),
           "--threads", str(a.threads), *a.train_args]
    subprocess.run(cmd, check=True)
    results = json.loads((out / "results.json").read_text())
    pred = subprocess.run([sys.executable, "-m", "cnnlab", "predict", str(out), str(data / "test"),
                           "--format", "jsonl"], check=True, capture_output=True, text=True)
    answers = [json.loads(line) for line in pred.stdout.splitlines()]
    right = sum(r["label"] == Path(r["file"]).parent.name for r in answers)
    # eval's own verdict per photo: `cnnlab mistakes` lists the test photos the run's weights get wrong
    subprocess.run([sys.executable, "-m", "cnnlab", "mistakes", str(out)], check=True, capture_output=True)
    with open(out / "inspect" / "mistakes.csv") as f:
        eval_wrong = {row["file"] for row in csv.DictReader(f)}
    predict_wrong = {r["file"] for r in answers if r["label"] != Path(r["file"]).parent.name}
    report = {
        "data": str(data), "train_photos": results["train_samples"], "test_photos": results["test_samples"],
        "fine_tuned": {"test_accuracy": results["test_accuracy"], "train_seconds": results["train_seconds"],
                       "threads": results["threads"], "precision": results["precision"]},
        "predict": {"test_accuracy": right / len(answers), "agrees_with_eval": predict_wrong == eval_wrong},
        "baseline_logistic_regression": baseline(data, a.threads),
    }
    print(json.dumps(report, indent=2))
    if not report["predict"]["agrees_with_eval"]:
        sys.exit(f"predict and eval disagree on {sorted(predict_wrong ^ eval_wrong)}")


if __name__ == "__main__":
    main()
