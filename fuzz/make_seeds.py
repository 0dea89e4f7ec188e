#!/usr/bin/env python3
"""Writes the seed corpora of the file-reader fuzz targets (standard library only):
fuzz/corpus/checkpoint (tiny ViT and CNN checkpoints + broken variants), fuzz/corpus/dataset
(a tiny `harvit prepare` dataset file + broken variants), fuzz/corpus/uci_har (UCI-HAR folders
packed as fuzz_uci_har.cpp expects: parts split on '|'). Run from anywhere:
    python3 fuzz/make_seeds.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors / checkpoints -----------------------------------------------------------------
PACK = {"F32": "<%df", "F64": "<%dd", "I32": "<%di", "I64": "<%dq", "U8": "<%dB"}


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, values)."""
    header, blobs, off = {}, [], 0
    for name, dt, shape, vals in tensors:
        b = struct.pack(PACK[dt] % len(vals), *vals)
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (len(h) + 8) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def f32(name, shape, v=0.1):
    return (name, "F32", shape, [v] * numel(shape))


def vit_tensors(T, M, C, P, D, H, A, L, hidden):
    N, HA = T // P, H * A
    ts = [f32("position_embedding", (1, M, N, D), 0.0), f32("patch_conv.weight", (D, 1, P, 1)),
          f32("patch_conv.bias", (D,))]
    n = N
    for l in range(L):
        p = f"msa_layer.{l}."
        for q in ("query.", "key.", "value."):
            ts += [f32(p + q + "weight", (HA, D)), f32(p + q + "bias", (HA,))]
        ts += [f32(p + "att_mlp.0.weight", (D, HA)), f32(p + "att_mlp.0.bias", (D,)),
               f32(p + "att_mlp.1.weight", (D,), 1.0), f32(p + "att_mlp.1.bias", (D,), 0.0),
               f32(p + "downsample_mlp.0.weight", (D, 2 * D)), f32(p + "downsample_mlp.0.bias", (D,)),
               f32(p + "downsample_mlp.1.weight", (D,), 1.0), f32(p + "downsample_mlp.1.bias", (D,), 0.0)]
        n = (n + 1) // 2
    F = M * n * D
    ts += [f32("dense_tower.0.weight", (hidden, F)), f32("dense_tower.0.bias", (hidden,)),
           f32("dense_tower.1.weight", (hidden,), 1.0), f32("dense_tower.1.bias", (hidden,), 0.0),
           f32("dense_tower.3.weight", (C, hidden)), f32("dense_tower.3.bias", (C,))]
    return ts


def meta(config, classes=None, extra=True):
    m = {"format": "harvit-checkpoint", "version": "1", "config": json.dumps(config, separators=(",", ":"))}
    if classes:
        m["class_names"] = json.dumps(classes)
        m["normalization"] = json.dumps({"mean": [0.0] * config["M"], "std": [1.0] * config["M"]})
    if extra:
        m["extra"] = json.dumps({"epoch": 1})
    return m


def checkpoints():
    vcfg = {"model": "vit", "T": 8, "M": 2, "C": 2, "P": 4, "D": 2, "H": 1, "A": 2, "L": 1, "hidden": 2}
    vit = safetensors(vit_tensors(8, 2, 2, 4, 2, 1, 2, 1, 2), meta(vcfg, ["a", "b"]))
    out("checkpoint", "vit_tiny.safetensors", vit)
    ccfg = {"model": "cnn", "T": 4, "M": 1, "C": 2, "channels": [2, 1], "kernel": 3}
    cnn = safetensors([f32("convs.0.weight", (2, 1, 3)), f32("convs.0.bias", (2,)),
                       f32("convs.1.weight", (1, 2, 3)), f32("convs.1.bias", (1,)),
                       f32("fc.weight", (2, 1)), f32("fc.bias", (2,))], meta(ccfg, ["x", "y"], extra=False))
    out("checkpoint", "cnn_tiny.safetensors", cnn)
    # Every dtype the reader converts (not a checkpoint: no config).
    out("checkpoint", "dtypes.safetensors",
        safetensors([("a", "F64", (2,), [1.5, -2.0]), ("b", "I32", (2,), [3, -4]),
                     ("c", "I64", (1, 2), [5, 6]), ("d", "U8", (3,), [7, 8, 9]), ("e", "F32", (0,), [])],
                    {"note": "no config"}))
    # Broken variants.
    out("checkpoint", "truncated.safetensors", vit[:-5])
    out("checkpoint", "header_too_long.safetensors", struct.pack("<Q", 1 << 40) + b"{}")
    out("checkpoint", "wrong_shape.safetensors",
        safetensors(vit_tensors(8, 2, 2, 4, 2, 1, 2, 1, 2)[:-1] + [f32("dense_tower.3.bias", (3,))],
                    meta(vcfg)))
    big = dict(vcfg, D=1 << 20, hidden=1 << 20)
    out("checkpoint", "config_huge.safetensors", safetensors([f32("position_embedding", (1,))], meta(big)))


# ---- dataset files -------------------------------------------------------------------------------
def dataset_file(N=3, T=2, M=1, header_over=None, version=1):
    h = {"name": "tiny", "T": T, "M": M, "N": N, "class_names": ["a", "b"], "axis_names": ["x"] * M,
         "mean": [0.5] * M, "std": [2.0] * M, "stride": 1, "info": {"given_split": True}}
    h.update(header_over or {})
    hs = json.dumps(h, separators=(",", ":")).encode()
    b = b"HVITDATA" + struct.pack("<IIQ", version, 0, len(hs)) + hs
    b += struct.pack("<%df" % (N * T * M), *[0.25 * i for i in range(N * T * M)])
    b += struct.pack("<%di" % N, *[i % 2 for i in range(N)])       # y
    b += struct.pack("<%di" % N, *[1 + i // 2 for i in range(N)])  # subject
    b += struct.pack("<%di" % N, *[0] * N)                         # run
    b += struct.pack("<%di" % N, *range(N))                        # pos
    b += bytes([0, 1, 2, 255][i % 4] for i in range(N))             # split
    return b


def datasets():
    ok = dataset_file()
    out("dataset", "tiny.bin", ok)
    out("dataset", "empty.bin", dataset_file(N=0))
    out("dataset", "truncated.bin", ok[:-2])
    out("dataset", "version2.bin", dataset_file(version=2))
    out("dataset", "huge_n.bin", dataset_file(header_over={"N": 1 << 31}))


# ---- UCI-HAR folders -----------------------------------------------------------------------------
def row(k):
    return " ".join(str((i * 7 + k) % 10) for i in range(128)) + "\n"


def uci():
    sig = row(1) + row(2)
    # y_train | subject_train | y_test | subject_test | all 18 signal files
    out("uci_har", "two_rows.txt", ("1\n5\n|1\n1\n|2\n6\n|3\n3\n|" + sig).encode())
    out("uci_har", "one_row_sci.txt", ("4|7|6|9|" + " ".join(["-1.5e-01"] * 128) + "\n").encode())
    out("uci_har", "bad_label.txt", ("7\n|1\n|2\n|3\n|" + row(0)).encode())
    out("uci_har", "short_row.txt", ("1\n|1\n|2\n|3\n|1 2 3\n").encode())
    out("uci_har", "not_number.txt", ("1\n|1\n|2\n|3\n|" + row(0).replace("3", "x", 1)).encode())
    out("uci_har", "row_mismatch.txt", ("1\n2\n|1\n1\n|2\n|3\n|" + row(0)).encode())


if __name__ == "__main__":
    checkpoints()
    datasets()
    uci()
