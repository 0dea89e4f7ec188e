#!/usr/bin/env python3
"""Markdown rows from harvit eval.json files (used to write docs/results/).

  tools/results_table.py runs/wisdm-vit runs/wisdm-vit-s1 ...
prints one row per run (test accuracy, macro F1, weighted F1, val accuracy, best epoch, per-class
accuracy) and, for several runs, the mean and spread (sample standard deviation)."""
import json
import statistics
import sys


def main():
    rows = []
    for d in sys.argv[1:]:
        with open(f"{d}/eval.json") as f:
            e = json.load(f)
        t = e["test"]
        rows.append((d, e["val_accuracy"], t["accuracy"], t["f1_macro"], t["f1_weighted"], e.get("checkpoint_epoch", -1),
                     {c["class"]: c["accuracy"] for c in t["per_class"]}))
    classes = list(rows[0][6].keys())
    print("| run | val acc | test acc | macro F1 | weighted F1 | best epoch | " + " | ".join(classes) + " |")
    print("|---" * (6 + len(classes)) + "|")
    for d, va, ta, mf, wf, ep, pc in rows:
        print(f"| {d} | {va:.4f} | {ta:.4f} | {mf:.4f} | {wf:.4f} | {ep} | " + " | ".join(f"{pc[c]:.4f}" for c in classes) + " |")
    if len(rows) > 1:
        def ms(i):
            v = [r[i] for r in rows]
            return f"{statistics.mean(v):.4f} +- {statistics.stdev(v):.4f}"
        print(f"| mean +- sd | {ms(1)} | {ms(2)} | {ms(3)} | {ms(4)} | | " +
              " | ".join(f"{statistics.mean(r[6][c] for r in rows):.4f}" for c in classes) + " |")


if __name__ == "__main__":
    main()
