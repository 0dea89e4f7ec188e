#!/usr/bin/env python3
"""Value checks for tests/e2e_cli.sh (standard library only).

  windows-csv DIR SUBJECTS OUT.csv
      writes the bundled WISDM windows (DIR/wisdm_*.npy) of the given subjects as one CSV
      recording per subject (columns user,ax,ay,az,act; each subject's windows back to back, so
      `predict --stride 128` cuts exactly those windows) and OUT.csv.json with the windows' labels
  eval EVAL.json TABLE.txt MIN_ACC
      the printed table against eval.json (every figure, per class too), eval.json's figures
      against its own confusion matrix, and the test accuracy >= MIN_ACC and above the
      majority-class rate; prints the figures
  predict EVAL.json PRED.csv OUT.csv.json
      predict's labels on the windows of the test split: the confusion matrix they give is eval's
      (same windows, same model, same normalisation), every window present once
  int8 EVAL8.json TABLE8.txt EVAL.json MIN_AGREE
      the int8 eval's agreement with the fp32 labels >= MIN_AGREE, the same in its table and its
      eval.json, and its fp32 figure the fp32 eval's
  agree PRED.csv PRED8.csv EVAL8.json
      fp32 and int8 predict agree on exactly the fraction of windows the int8 eval reports
"""
import json
import re
import struct
import sys


def fail(msg):
    print("e2e_values: FAILED: " + msg, file=sys.stderr)
    sys.exit(1)


def npy(path):
    b = open(path, "rb").read()
    if b[:6] != b"\x93NUMPY":
        fail(path + ": not a .npy file")
    if b[6] == 1:
        hl, off = struct.unpack("<H", b[8:10])[0], 10
    else:
        hl, off = struct.unpack("<I", b[8:12])[0], 12
    h = eval(b[off:off + hl].decode("latin1"), {})
    off += hl
    code = {"<f4": "f", "<i4": "i", "|u1": "B", "<f8": "d", "<i8": "q"}[h["descr"]]
    n = 1
    for s in h["shape"]:
        n *= s
    return struct.unpack("<%d%s" % (n, code), b[off:off + n * struct.calcsize(code)]), h["shape"]


CLASSES = ["Downstairs", "Jogging", "Sitting", "Standing", "Upstairs", "Walking"]  # data/.../SOURCE.md


def windows_csv(d, subjects, out):
    X, shape = npy(d + "/wisdm_X.npy")
    y, _ = npy(d + "/wisdm_y.npy")
    u, _ = npy(d + "/wisdm_user.npy")
    n, T, M = shape
    want = [int(s) for s in subjects.split(",")]
    index = []  # (subject, start in the subject's recording, label)
    with open(out, "w") as f:
        f.write("user,ax,ay,az,act\n")
        for s in want:
            k = 0
            for i in range(n):
                if u[i] != s:
                    continue
                base = i * T * M
                for t in range(T):
                    v = X[base + t * M:base + (t + 1) * M]
                    f.write("%d,%.9g,%.9g,%.9g,%s\n" % (s, v[0], v[1], v[2], CLASSES[y[i]]))
                index.append((s, k * T, CLASSES[y[i]]))
                k += 1
    json.dump(index, open(out + ".json", "w"))
    print("wrote %d windows of subjects %s" % (len(index), subjects))


def table_value(text, label):
    m = re.search(r"^\| " + re.escape(label) + r" *\| *([^|]*?) *\|", text, re.M)
    if not m:
        fail("table has no row '%s'" % label)
    return m.group(1)


def close(a, b, digits=4):
    return abs(a - b) <= 0.5 * 10 ** -digits + 1e-12


def check_eval(path, table_path, min_acc):
    j = json.load(open(path))
    text = open(table_path).read()
    t = j["test"]
    cm = t["confusion"]
    C = len(cm)
    n = sum(map(sum, cm))
    if n != t["n"] or n == 0:
        fail("confusion matrix holds %d windows, eval.json n = %d" % (n, t["n"]))
    acc = sum(cm[c][c] for c in range(C)) / n
    if not close(acc, t["accuracy"], 9):
        fail("test accuracy %.6f is not the confusion matrix's %.6f" % (t["accuracy"], acc))
    rows = [sum(cm[c]) for c in range(C)]
    cols = [sum(cm[r][c] for r in range(C)) for c in range(C)]
    rec = [cm[c][c] / rows[c] if rows[c] else 0.0 for c in range(C)]
    prec = [cm[c][c] / cols[c] if cols[c] else 0.0 for c in range(C)]
    f1 = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(prec, rec)]
    checks = {"recall_macro": sum(rec) / C, "precision_macro": sum(prec) / C, "f1_macro": sum(f1) / C,
              "recall_weighted": sum(r * w for r, w in zip(rec, rows)) / n,
              "precision_weighted": sum(p * w for p, w in zip(prec, rows)) / n,
              "f1_weighted": sum(x * w for x, w in zip(f1, rows)) / n}
    for k, v in checks.items():
        if not close(v, t[k], 6):
            fail("eval.json test.%s %.6f, from its confusion matrix %.6f" % (k, t[k], v))
    # The printed table says the same as eval.json.
    pairs = [("Test accuracy", t["accuracy"]), ("Val accuracy", j["val"]["accuracy"]),
             ("Precision (weighted)", t["precision_weighted"]), ("Recall (weighted)", t["recall_weighted"]),
             ("F1-score (weighted)", t["f1_weighted"])]
    for label, v in pairs:
        if not close(float(table_value(text, label)), v):
            fail("table %s %s, eval.json %.6f" % (label, table_value(text, label), v))
    macro = [float(x) for x in table_value(text, "Precision / Recall / F1 (macro)").split("/")]
    for got, want in zip(macro, [t["precision_macro"], t["recall_macro"], t["f1_macro"]]):
        if not close(got, want):
            fail("table macro P/R/F1 %s, eval.json %s" % (macro, [t["precision_macro"], t["recall_macro"], t["f1_macro"]]))
    if int(table_value(text, "Parameters").replace(",", "")) != j["params"]:
        fail("table parameters vs eval.json %d" % j["params"])
    for c, pc in enumerate(t["per_class"]):
        m = re.search(r"^\| " + re.escape(pc["class"]) + r" *\| *([0-9.]+) *\| *(\d+) *\| *([0-9.]+) *\| *([0-9.]+) *\|",
                      text, re.M)
        if not m:
            fail("table has no per-class row for " + pc["class"])
        a, w, p, f = float(m.group(1)), int(m.group(2)), float(m.group(3)), float(m.group(4))
        if not (close(a, rec[c]) and w == rows[c] and close(p, prec[c]) and close(f, f1[c]) and close(pc["accuracy"], rec[c], 9)):
            fail("per-class row %s: table %s, from the confusion matrix %.4f %d %.4f %.4f" %
                 (pc["class"], m.groups(), rec[c], rows[c], prec[c], f1[c]))
    majority = max(rows) / n
    print("test accuracy %.4f (%d windows; majority class %.4f, uniform chance %.4f); val %.4f; "
          "macro F1 %.4f; table and eval.json agree" % (acc, n, majority, 1.0 / C, j["val"]["accuracy"], t["f1_macro"]))
    if acc < min_acc:
        fail("test accuracy %.4f below %.2f" % (acc, min_acc))
    if acc < majority + 0.1:
        fail("test accuracy %.4f not clearly above the majority class's %.4f" % (acc, majority))


def check_predict(eval_path, pred_path, index_path):
    j = json.load(open(eval_path))
    names = [pc["class"] for pc in j["test"]["per_class"]]
    index = {(s, start): label for s, start, label in json.load(open(index_path))}
    lines = open(pred_path).read().splitlines()
    head = lines[0].split(",")
    col = {h: i for i, h in enumerate(head)}
    for need in ("subject", "start", "predicted", "true"):
        if need not in col:
            fail("predict header %s has no column %s" % (head, need))
    probs = [col["p_" + c] for c in names]
    C = len(names)
    cm = [[0] * C for _ in range(C)]
    seen = set()
    for line in lines[1:]:
        f = line.split(",")
        key = (int(f[col["subject"]]), int(f[col["start"]]))
        if key not in index or key in seen:
            fail("predict window %s is not one of the test windows, or twice" % (key,))
        seen.add(key)
        if f[col["true"]] != index[key]:
            fail("predict truth %s for window %s, the recording says %s" % (f[col["true"]], key, index[key]))
        p = [float(f[k]) for k in probs]  # printed with 4 decimals
        if abs(sum(p) - 1) > 4e-4 or p[names.index(f[col["predicted"]])] < max(p):
            fail("window %s: probabilities %s do not sum to 1 or their largest is not %s's" % (key, p, f[col["predicted"]]))
        cm[names.index(index[key])][names.index(f[col["predicted"]])] += 1
    if len(seen) != len(index):
        fail("predict labelled %d windows, the recording has %d" % (len(seen), len(index)))
    if cm != j["test"]["confusion"]:
        fail("predict's confusion matrix on the test windows %s differs from eval's %s" % (cm, j["test"]["confusion"]))
    correct = sum(cm[c][c] for c in range(C))
    print("predict: %d windows, accuracy %.4f, confusion matrix equal to eval's" % (len(seen), correct / len(seen)))


def check_int8(path, table_path, fp32_path, min_agree):
    j = json.load(open(path))
    fp = json.load(open(fp32_path))
    text = open(table_path).read()
    if j.get("precision") != "int8":
        fail("int8 eval.json precision is %s" % j.get("precision"))
    rp = j.get("reduced_precision")
    if not rp or "agreement_with_fp32" not in rp:
        fail("int8 eval.json has no reduced_precision.agreement_with_fp32")
    agree = rp["agreement_with_fp32"]
    shown = float(table_value(text, "  labels equal to fp32's").rstrip("% "))
    if not close(shown, 100 * agree, 2):
        fail("int8 table agreement %s %%, eval.json %.6f" % (shown, agree))
    if not close(rp["fp32_accuracy"], fp["test"]["accuracy"], 9):
        fail("int8 eval's fp32 accuracy %.6f, the fp32 eval's %.6f" % (rp["fp32_accuracy"], fp["test"]["accuracy"]))
    if not close(float(table_value(text, "  same model in fp32")), fp["test"]["accuracy"]):
        fail("int8 table fp32 accuracy vs the fp32 eval")
    print("int8: test accuracy %.4f vs fp32 %.4f; labels equal to fp32's on %.4f of the %d test windows" %
          (j["test"]["accuracy"], fp["test"]["accuracy"], agree, j["test"]["n"]))
    if not agree >= min_agree:
        fail("int8 labels equal fp32's on %.4f of the test windows, below %.3f" % (agree, min_agree))


def labels(pred_path):
    lines = open(pred_path).read().splitlines()
    col = {h: i for i, h in enumerate(lines[0].split(","))}
    out = {}
    for line in lines[1:]:
        f = line.split(",")
        out[(f[col["subject"]], f[col["start"]])] = f[col["predicted"]]
    return out


def check_agree(pred_path, pred8_path, eval8_path):
    a, b = labels(pred_path), labels(pred8_path)
    if a.keys() != b.keys():
        fail("fp32 and int8 predict labelled different windows")
    same = sum(a[k] == b[k] for k in a)
    want = json.load(open(eval8_path))["reduced_precision"]["agreement_with_fp32"]
    print("predict int8 vs fp32: %d of %d labels equal (%.4f; eval: %.4f)" % (same, len(a), same / len(a), want))
    if abs(same / len(a) - want) > 1e-9:
        fail("predict's int8/fp32 agreement %.6f differs from eval's %.6f" % (same / len(a), want))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "windows-csv":
        windows_csv(*args)
    elif cmd == "eval":
        check_eval(args[0], args[1], float(args[2]))
    elif cmd == "predict":
        check_predict(*args)
    elif cmd == "agree":
        check_agree(*args)
    elif cmd == "int8":
        check_int8(args[0], args[1], args[2], float(args[3]))
    else:
        fail("unknown command " + cmd)
