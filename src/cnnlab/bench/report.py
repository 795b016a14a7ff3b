"""`cnnlab bench`'s figures as text: the tables docs/benchmarks.md shows."""

from __future__ import annotations

from .machine import describe
from .seed_loop import SEED_BATCH

_COLUMNS = ("model", "seed s", "seed img/s", "(data s)", "cnnlab s", "cnnlab img/s", "ratio", "floor s",
            "ours/floor", "fp32 floor", "seed acc", "cnnlab acc")
_WIDTHS = (16, 7, 10, 8, 8, 12, 5, 7, 10, 10, 8, 10)


def _cells(cells, widths) -> str:
    return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(cells, widths)))


def format_row(row: dict) -> str:
    s, c = row["seed"], row["cnnlab"]
    return _cells((row["model"], f"{s['epoch_seconds']:.2f}", f"{s['images_per_s']:.0f}",
                   f"{s['data_pipeline_seconds']:.2f}", f"{c['epoch_seconds']:.2f}",
                   f"{c['images_per_s']:.0f}", f"{row['speedup']:.1f}x", f"{row['floor_epoch_seconds']:.2f}",
                   f"{row['cnnlab_over_floor']:.1f}x", f"{row['floor_epoch_seconds_fp32']:.2f}",
                   f"{100 * s['test_accuracy']:.2f}%", f"{100 * c['test_accuracy']:.2f}%"), _WIDTHS)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _secs(v) -> str:
    return "-" if v is None else f"{v:.1f} s"


def format_report(r: dict) -> str:
    m, d = r["machine"], r["data"]
    peak = ", ".join(f"{v} GFLOP/s {k}" for k, v in r["matmul_gflops"].items())
    lines = [f"cnnlab bench{' --quick' if r['quick'] else ''}: {describe(m)}, {r['threads']} thread(s), "
             f"load average {m['load_average']} -> {m.get('load_average_end')}",
             f"matmul peak (torch.mm 1024x1024, {r['threads']} thread(s)): {peak}; cnnlab trains in "
             f"{r['train_precision']}"]
    if r.get("epochs"):
        n, full = d["train_images"], d["full_train_images"]
        sliced = f"; timed on {n} and scaled" if n < full else ""
        lines += ["", f"one epoch of {d['name']} ({full} images, batch {SEED_BATCH}{sliced}), same data, "
                  "same initial weights:",
                  f"seconds per epoch; (data s) = the seed loop's DataLoader alone; FLOP floor at the "
                  f"{r['train_precision']} peak and ours/floor, and the floor at the fp32 peak; test "
                  f"accuracy on {d['test_images']} images", _cells(_COLUMNS, _WIDTHS)]
        lines += [format_row(row) for row in r["epochs"]]
    lines += _budget_lines(r) + _same_accuracy_lines(r) + _peer_lines(r) + _inference_lines(r)
    lines.append(f"({r['bench_seconds']:.0f} s in all)")
    return "\n".join(lines)


def _budget_lines(r: dict) -> list[str]:
    tta = r.get("time_to_accuracy")
    if not tta:
        return []
    lines = ["", f"{tta['model']} on a time budget ({r['data']['name']}; seconds in all: set-up, training, "
             "validation and the final test; validation crossings in training seconds):"]
    for t in tta["runs"].values():
        cross = ", ".join(f"{k}: {_secs(v)}" for k, v in t["val_crossings"].items())
        lines.append(f"  {t['command']:<25} {t.get('model', ''):<14} {t['precision']:<4} "
                     f"{t['epochs']:5.1f} epochs {t['used_seconds']:6.1f} s  "
                     f"test {_pct(t['test_accuracy'])}  validation reached "
                     f"{cross}")
    return lines


def _same_accuracy_lines(r: dict) -> list[str]:
    rows = r.get("same_accuracy")
    if not rows:
        return []
    lines = ["", "time to the same accuracy: the seeds' loop for N epochs, and cnnlab's default to the test "
             "accuracy it reached (training seconds)"]
    for x in rows:
        ratio = "-" if x["ratio"] is None else f"{x['ratio']:.1f}x"
        lines.append(f"  {x['model']:<17} {x['epochs']} epoch(s) {x['seed_seconds']:7.1f} s  "
                     f"{_pct(x['seed_test_accuracy'])}   cnnlab {_secs(x['cnnlab_seconds'])}   {ratio}")
    return lines


def _peer_lines(r: dict) -> list[str]:
    p = r.get("peers")
    if not p:
        return []
    ours = p["cnnlab"]
    lines = ["", f"time to {100 * p['target']:.0f}% test accuracy (training seconds; cnnlab: its whole run):",
             f"  {'cnnlab ' + (ours['command'] if ours else '(not reached)'):<40} "
             + (f"{ours['seconds']:8.1f} s  test {_pct(ours['test_accuracy'])}" if ours else "")]
    for x in p["peers"]:
        got = (f"{x['seconds']:8.1f} s" if x["reached"] else f"not in {x['cap_seconds']:.0f} s")
        best = max(h["test_accuracy"] for h in x["history"])
        ratio = x.get("ratio")
        at_least = ">= " if x.get("ratio_is_lower_bound") else ""
        ratio = "" if ratio is None else f"  {at_least}{ratio:.0f}x cnnlab's"
        lines.append(f"  {x['peer']:<40} {got}  ({x['epochs']} epochs, best {_pct(best)}){ratio}")
    return lines


def _inference_lines(r: dict) -> list[str]:
    inf = r.get("inference")
    if not inf:
        return []
    lines = ["", f"inference, {inf['model']} ({inf['threads']} thread(s)):"]
    for label, sfx in (("as served (float32, channels-last)", ""),
                       ("with bf16 autocast where native", "_fast")):
        lines.append(f"  {label:<36} batch 1: {inf['batch1_images_per_s' + sfx]:5.0f} images/s, "
                     f"p50 {inf['batch1_p50_ms' + sfx]:.2f} ms, p90 {inf['batch1_p90_ms' + sfx]:.2f} ms; "
                     f"batch 1024: {inf['batch1024_images_per_s' + sfx]:5.0f} images/s")
    return lines
