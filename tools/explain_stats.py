#!/usr/bin/env python3
"""Does the ViT's attention follow the signal? Reads `harvit explain`'s explain.json and the raw
windows (a WISDM-style npy, (N, T, M), row = the dataset file's window index) and prints, per true
class (and for the errors), the median over windows and axes of:
  - Spearman's rank correlation between block 0's attention share of each patch and the patch's
    largest deviation from the window's mean on that axis (peaks, steps);
  - the same for the rollout;
  - block 0's largest and smallest share, relative to uniform;
and, over all windows, each block's and the rollout's largest and smallest share (the median of
the per-window extremes over all axes).

  tools/explain_stats.py explain.json wisdm_X.npy        (docs/explain.md shows its output)
"""
import json
import sys

import numpy as np


def ranks(a):
    return np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def main():
    j = json.load(open(sys.argv[1]))
    X = np.load(sys.argv[2])
    c = j["config"]
    T, M, P = c["T"], c["M"], c["P"]
    N = T // P
    rows = {}
    for w in j["windows"]:
        x = X[w["file_index"]]
        if x.shape != (T, M):
            x = x.T
        key = "(errors)" if w["why"] == "error" else w["true"]
        for m in range(M):
            dev = np.abs(x[:, m] - x[:, m].mean())[:N * P].reshape(N, P).max(1)
            r0 = np.array(w["received"][0][m * N:(m + 1) * N])
            ro = np.array(w["rollout"][m * N:(m + 1) * N])
            rows.setdefault(key, []).append((spearman(r0, dev), spearman(ro, dev), r0.max() * N, r0.min() * N))
    print(f"| {'windows':12s} | window-axes | rho(block 0, peak) | rho(rollout, peak) | block 0 max share | block 0 min share |")
    print("|---|---|---|---|---|---|")
    for k in sorted(rows):
        v = np.array(rows[k])
        print(f"| {k:12s} | {len(v):11d} | {np.median(v[:, 0]):+.2f} | {np.median(v[:, 1]):+.2f} | "
              f"{np.median(v[:, 2]):.2f} | {np.median(v[:, 3]):.2f} |")
    print()
    print("| map | median largest share | median smallest share |")
    print("|---|---|---|")
    for l in range(c["L"]):
        n = -(-N // (1 << l))  # tokens(l)
        big = [max(w["received"][l]) * n for w in j["windows"]]
        small = [min(w["received"][l]) * n for w in j["windows"]]
        print(f"| block {l} ({n} tokens) | {np.median(big):.2f} | {np.median(small):.2f} |")
    big = [max(w["rollout"]) * N for w in j["windows"]]
    small = [min(w["rollout"]) * N for w in j["windows"]]
    print(f"| rollout ({N} patches) | {np.median(big):.2f} | {np.median(small):.2f} |")


if __name__ == "__main__":
    main()
