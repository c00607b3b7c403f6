"""Every character language model in one table: its cell name, its model class and how to build one.

Three families share the character-model contract (``forward(idx, targets, state) -> LMOutput``,
``init_state``, ``start``/``step`` for ``seqmodels.decoding``), so the scripts, the tabs and the benches
take any of them by cell name:

- ``CharLM`` (``seqmodels.charlm``): the classic cells rnn, lstm, gru, whose gates read the previous state;
- ``LinearRNNLM`` (``seqmodels.linear_rnn``): mingru, minlstm, rglru, whose gates read only the input;
- ``TransformerLM`` (``seqmodels.transformer``): attention over a window, the reference.
"""
from __future__ import annotations

from dataclasses import fields

import torch.nn as nn

from .charlm import CELLS, CharLM
from .linear_rnn import LINEAR_CELLS, LinearRNNLM
from .transformer import TransformerLM

# cell name -> (model class, a few words for menus and --help)
CHAR_CELLS: dict[str, tuple[type, str]] = {
    "rnn": (CharLM, "vanilla RNN (Elman 1990)"),
    "lstm": (CharLM, "LSTM (Hochreiter & Schmidhuber 1997)"),
    "gru": (CharLM, "GRU (Cho et al. 2014)"),
    "mingru": (LinearRNNLM, "minGRU (Feng et al. 2024): gates from the input only"),
    "minlstm": (LinearRNNLM, "minLSTM (Feng et al. 2024): gates from the input only"),
    "rglru": (LinearRNNLM, "RG-LRU (Hawk, De et al. 2024): a gated linear recurrence"),
    "transformer": (TransformerLM, "causal Transformer (nanoGPT-style), the reference"),
}
assert set(CELLS) | set(LINEAR_CELLS) | {"transformer"} == set(CHAR_CELLS)

CHAR_MODEL_TYPES = tuple(dict.fromkeys(cls.model_type for cls, _ in CHAR_CELLS.values()))

# cell -> the shipped checkpoint's folder under checkpoints/
CHECKPOINT_OF = {"lstm": "charlm-lstm", "gru": "charlm-gru", "rnn": "charlm-rnn", "mingru": "charlm-mingru",
                 "rglru": "charlm-rglru", "transformer": "charlm-transformer"}


def cell_of(model) -> str:
    """The cell name of a character model (the Transformer's is "transformer")."""
    return getattr(model.config, "cell", "transformer")


def build_char_model(cell: str, config: dict) -> nn.Module:
    """A fresh model of ``cell`` from config fields (those its config class lacks are ignored, so the
    training script can pass one set of options to every family)."""
    if cell not in CHAR_CELLS:
        raise ValueError(f"unknown cell {cell!r}; known cells: {', '.join(CHAR_CELLS)}")
    cls = CHAR_CELLS[cell][0]
    known = {f.name for f in fields(cls.config_class)}
    values = {k: v for k, v in {**config, "cell": cell}.items() if k in known and v is not None}
    return cls(cls.config_class(**values))


def default_batch(cell: str) -> tuple[int, int]:
    """(batch size, sequence length) of a training step: the Transformer sees its whole window per sequence."""
    if CHAR_CELLS[cell][0] is TransformerLM:
        return 32, TransformerLM.config_class.context
    return 64, 128
