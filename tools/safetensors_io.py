"""Minimal safetensors reader/writer (numpy only), so the tools run without the `safetensors`
package (not in Debian 12). Format: 8-byte little-endian header length, JSON header, raw data."""
import json
import os
import struct

import numpy as np

_DT = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U8": np.uint8}
_DT_INV = {np.dtype(v).str: k for k, v in _DT.items()}


def save(path, tensors, metadata=None):
    """tensors: ordered dict name -> numpy array (C order, little-endian). Atomic write."""
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = _DT_INV.get(arr.dtype.newbyteorder("<").str)
        if dt is None:
            raise ValueError(f"{name}: unsupported dtype {arr.dtype}")
        b = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (len(h) + 8) % 8) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path):
    """Returns (dict name -> numpy array in file order, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, en = e["data_offsets"]
        arr = np.frombuffer(data[base + b:base + en], dtype=np.dtype(_DT[e["dtype"]]).newbyteorder("<"))
        out[name] = arr.reshape(e["shape"]).copy()
    return out, meta
