#!/usr/bin/env python3
"""Checks a model written by `harvit export --format onnx` against the checkpoint it came from.

    python3 tools/onnx_check.py MODEL.onnx CHECKPOINT.safetensors

- onnx.checker.check_model(model, full_check=True) (structure, opset schemas, shape inference);
- opset 17 of the default domain; input x [N, 1, T, M] with a symbolic N; outputs logits and
  probabilities [N, C];
- every tensor of the checkpoint is an initializer of the same name, shape and bytes, and the only
  other initializers are normalization.mean / normalization.std, equal to the checkpoint's
  statistics;
- metadata_props: classes, window, axes, normalization, model_config (all equal to the
  checkpoint's), harvit_version; producer_name harvit.
Exit 0 and one line on success; an AssertionError (exit 1) naming what differs otherwise.
Needs python3-onnx (Debian) and numpy.
"""
import json
import struct
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, h in header.items():
        assert h["dtype"] == "F32", f"{path}: {name} is {h['dtype']}"
        b0, b1 = h["data_offsets"]
        tensors[name] = (list(h["shape"]), data[b0:b1])
    return tensors, meta


def dims(value_info):
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_param if d.HasField("dim_param") else d.dim_value)
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: onnx_check.py MODEL.onnx CHECKPOINT.safetensors")
    model_path, ck_path = sys.argv[1:]
    m = onnx.load(model_path)
    onnx.checker.check_model(m, full_check=True)
    tensors, meta = read_safetensors(ck_path)
    config = json.loads(meta["config"])
    kind = config.get("model", "vit")
    T, M, C = config["T"], config["M"], config["C"]

    opsets = {o.domain: o.version for o in m.opset_import}
    assert opsets == {"": 17}, f"opset imports {opsets}"
    assert m.producer_name == "harvit", m.producer_name
    g = m.graph
    assert [i.name for i in g.input] == ["x"], [i.name for i in g.input]
    xd = dims(g.input[0])
    assert isinstance(xd[0], str) and xd[1:] == [1, T, M], f"input x dims {xd}"
    assert [o.name for o in g.output] == ["logits", "probabilities"], [o.name for o in g.output]
    for o in g.output:
        od = dims(o)
        assert isinstance(od[0], str) and od[1:] == [C], f"output {o.name} dims {od}"
        assert o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT

    inits = {t.name: t for t in g.initializer}
    norm = json.loads(meta["normalization"]) if "normalization" in meta else None
    expected = set(tensors) | ({"normalization.mean", "normalization.std"} if norm else set())
    assert set(inits) == expected, f"initializers differ: extra {sorted(set(inits) - expected)}, " \
                                   f"missing {sorted(expected - set(inits))}"
    for name, (shape, raw) in tensors.items():
        t = inits[name]
        assert list(t.dims) == shape, f"{name}: dims {list(t.dims)} != checkpoint {shape}"
        assert t.data_type == onnx.TensorProto.FLOAT, name
        assert numpy_helper.to_array(t).astype("<f4").tobytes() == raw, f"{name}: values differ from the checkpoint"
    if norm:
        for k in ("mean", "std"):
            got = numpy_helper.to_array(inits["normalization." + k])
            assert np.array_equal(got, np.asarray(norm[k], np.float32)), f"normalization.{k}: {got} != {norm[k]}"

    props = {p.key: p.value for p in m.metadata_props}
    for k in ("classes", "window", "axes", "normalization", "model_config", "harvit_version"):
        assert k in props, f"metadata_props lacks {k}: {sorted(props)}"
    if "class_names" in meta:
        assert json.loads(props["classes"]) == json.loads(meta["class_names"]), props["classes"]
    assert len(json.loads(props["classes"])) == C
    assert props["window"] == str(T), props["window"]
    axes = json.loads(props["axes"])
    assert len(axes) == M and (not norm or "axes" not in norm or axes == norm["axes"]), props["axes"]
    assert json.loads(props["model_config"]) == config, props["model_config"]
    if norm:
        pn = json.loads(props["normalization"])
        assert np.array_equal(np.float32(pn["mean"]), np.float32(norm["mean"])), pn
        assert np.array_equal(np.float32(pn["std"]), np.float32(norm["std"])), pn
    assert props["harvit_version"] and m.producer_version == props["harvit_version"]
    print(f"onnx_check: {model_path}: {kind}, check_model(full_check=True) passed, opset 17, "
          f"{len(tensors)} checkpoint tensors = initializers (bytes equal), {len(g.node)} nodes, metadata equal "
          f"to the checkpoint's (onnx {onnx.__version__})")


if __name__ == "__main__":
    main()
