"""The linear recurrences' int8 generation step in C (``linear_rnn_step.c``), compiled here on first use.

One character of the 8-layer minGRU is some 200 small tensor operations; TorchScript runs them one dispatch at
a time, and at one character per call the dispatches, not the arithmetic, take most of the step (measured:
33 int8 products at about 10 us each, where the arithmetic of each needs well under 1 us). The C step does
the whole character in one call with the CPU's int8 dot-product instructions (``bench/generate_speed.py``).

It is built with the machine's C compiler (``cc``, or ``$CC``) for this CPU (``-march=native``) and cached
under ``~/.cache/rnn-playground`` (``$RNN_PLAYGROUND_CACHE``), keyed by the source, the flags and the CPU.
Where there is no compiler, the build fails, the CPU has neither AVX2 nor AVX-512 VNNI (the plain C loops
measured slower than TorchScript), or ``RNN_PLAYGROUND_NATIVE=0``, ``native_step`` returns None and
``FastLinearRNN`` keeps its TorchScript step: same contract, slower.

``linear_rnn_train.c`` (``seqmodels.native.fused``) is built the same way for training: a minGRU layer's
convolution, its gates and scan, and dropout, each direction one pass (torch operations where it
cannot be built).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

SOURCE = Path(__file__).with_name("linear_rnn_step.c")
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fPIC"]  # compiling; the link below leaves -ffast-math out
KERNELS = {2: "AVX-512 VNNI", 1: "AVX2", 0: "plain C"}
CELL_IDS = {"mingru": 0, "minlstm": 1, "rglru": 2}
_P = ctypes.c_void_p


def _cpu() -> str:
    """What -march=native depends on: the CPU's model and flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(dict.fromkeys(x for x in lines if x.startswith(("model name", "flags", "Features"))))
    except OSError:
        return platform.processor() + platform.machine()


def _cache_dir() -> Path:
    root = os.environ.get("RNN_PLAYGROUND_CACHE") or Path.home() / ".cache" / "rnn-playground"
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        return Path(root)
    except OSError:  # a read-only home (some hosts): the temp folder still works for this machine's life
        return Path(tempfile.gettempdir())


def compiler() -> str | None:
    """The C compiler to build with: ``$CC``, else ``cc`` or ``gcc`` on the PATH; None if there is none."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build(flags: tuple[str, ...] = tuple(FLAGS), source: Path = SOURCE) -> Path | None:
    """The compiled library for this CPU (built once, then cached), or None without a working compiler."""
    cc = compiler()
    if not cc:
        return None
    key = hashlib.sha256(source.read_bytes() + " ".join(flags).encode() + _cpu().encode()).hexdigest()[:16]
    lib = _cache_dir() / f"{source.stem}-{key}.so"
    if lib.is_file():
        return lib
    # build beside the target and rename: two processes (the app's workers) may build at once
    tmp, obj = lib.with_suffix(f".{os.getpid()}.tmp"), lib.with_suffix(f".{os.getpid()}.o.tmp")
    try:
        subprocess.run([cc, *flags, "-c", str(source), "-o", str(obj)], check=True, capture_output=True, timeout=120)
        # linked without -ffast-math: with it, gcc adds crtfastmath.o to a shared library, whose loading switches
        # the whole process to flushing subnormal numbers to zero (a test of the app's fuzzing caught it)
        subprocess.run([cc, "-shared", str(obj), "-o", str(tmp), "-lm", "-lpthread"], check=True,
                       capture_output=True, timeout=120)
        os.replace(tmp, lib)
    except (OSError, subprocess.SubprocessError):
        tmp.unlink(missing_ok=True)
        return None
    finally:
        obj.unlink(missing_ok=True)
    return lib


@lru_cache(maxsize=None)
def load(flags: tuple[str, ...] = tuple(FLAGS), source: Path = SOURCE) -> ctypes.CDLL | None:
    """The library built from ``source`` with ``flags``, loaded, or None where it cannot be built or loaded here."""
    if os.environ.get("RNN_PLAYGROUND_NATIVE", "1") == "0":
        return None
    path = build(flags, source)
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        return None
    return lib


def _pack(linear: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """int8 weights packed as [out/16][in/4][16][4] (zero-padded), and per-row scales, biases and row sums."""
    w = linear.weight.detach().float()
    out, n = w.shape
    out16, n4 = -(-out // 16) * 16, -(-n // 4) * 4
    scale = w.abs().amax(dim=1).clamp_min(1e-8) / 127.0  # symmetric, one scale per output row
    q = torch.zeros(out16, n4, dtype=torch.int8)
    q[:out, :n] = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    packed = q.view(out16 // 16, 16, n4 // 4, 4).permute(0, 2, 1, 3).contiguous().view(-1)
    padded = [torch.zeros(out16) for _ in range(2)]
    padded[0][:out], padded[1][:out] = scale, linear.bias.detach().float()
    return packed, padded[0], padded[1], q.int().sum(dim=1).int().contiguous()


class NativeStep:
    """``step(tokens, hs, convs) -> (logits, hs, convs)`` of a LinearRNNLM in one C call (see the module docstring)."""

    def __init__(self, model, lib: ctypes.CDLL):
        c = self.config = model.config
        self.lib = lib
        self.kernel = KERNELS[lib.native_kernel()]
        linears = [m for block in model.blocks for m in (block.mix.gates, block.mix.out, block.mlp.up, block.mlp.down)]
        packs = list(zip(*[_pack(m) for m in linears + [model.head]]))
        with torch.no_grad():
            norms = [t.detach().float().contiguous() for n in [m for b in model.blocks for m in (b.norm1, b.norm2)]
                     + [model.norm] for t in (n.weight, n.bias)]
            conv = [b.mix.conv.detach().float().contiguous() for b in model.blocks]
            decay = [F.logsigmoid(b.mix.decay_logit.detach()).float().contiguous() for b in model.blocks] \
                if c.cell == "rglru" else []
            self.embedding = model.embedding.weight.detach().float().contiguous()
        self._keep = (norms, conv, decay, packs)  # the C side holds raw pointers into these tensors
        M = c.mlp_ratio * c.hidden_size
        # one buffer: 7H + M floats of working vectors, then the quantised input's bytes
        self._bytes_at = 7 * c.hidden_size + M
        self._scratch = self._bytes_at + -(-max(c.hidden_size, M) // 4)
        self._args = [CELL_IDS[c.cell], c.num_layers, c.hidden_size, c.vocab_size, c.conv_width, M]
        self._pointers = [_P(self.embedding.data_ptr())] + [
            (_P * len(ts))(*[t.data_ptr() for t in ts]) if ts else None for ts in (norms, conv, decay, *packs)]

    def __call__(self, tokens: torch.Tensor, hs: torch.Tensor, convs: torch.Tensor):
        # converted only when needed: at ~250 us a character, every tensor call here shows
        tokens = tokens if tokens.dtype == torch.int64 and tokens.is_contiguous() else tokens.long().contiguous()
        hs = hs if hs.dtype == torch.float32 and hs.is_contiguous() else hs.float().contiguous()
        convs = convs if convs.dtype == torch.float32 and convs.is_contiguous() else convs.float().contiguous()
        new_hs, new_convs = torch.empty_like(hs), torch.empty_like(convs)  # states stay immutable, as in torch
        logits = torch.empty(tokens.numel(), self.config.vocab_size)
        # buffers per call, not per model: ctypes lets go of the GIL, and the app may step one model in two threads
        scratch = torch.empty(self._scratch)
        done = self.lib.linear_rnn_step(*self._args, tokens.numel(), *self._pointers,
                                        *[_P(t.data_ptr()) for t in (tokens, hs, convs, new_hs, new_convs, logits)],
                                        _P(scratch.data_ptr()), _P(scratch.data_ptr() + 4 * self._bytes_at))
        if done != 0:
            raise IndexError(f"token ids must be in [0, {self.config.vocab_size})")
        return logits, new_hs, new_convs


def native_step(model) -> NativeStep | None:
    """The C step for ``model`` (a LinearRNNLM), or None where it cannot be built or would be slower."""
    lib = load()
    return NativeStep(model, lib) if lib is not None and lib.native_kernel() > 0 else None
