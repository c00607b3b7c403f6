"""int8 copies of models for CPU decoding (dynamic quantisation, fbgemm): translation and captioning use it.

Search steps a few rows at a time through recurrent cells and a hidden x vocabulary output layer, matrix-vector
sized work where fp32 kernels are slow on one CPU thread. int8 weights measured 4x faster for translation
(bench/translate_speed.py) and 3x for the captioner's beam search (bench/caption_speed.py), for the small BLEU
changes the README reports. Convolutions (the image encoder) stay in float.
"""
from __future__ import annotations

import copy
import warnings

import torch
import torch.nn as nn


def int8_copy(model: nn.Module) -> nn.Module:
    """A copy with int8 weights in every Linear, GRU, LSTM and LSTMCell; the float model stays as it was."""
    with warnings.catch_warnings():  # torch.ao.quantization warns that it will move to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear, nn.GRU, nn.LSTM, nn.LSTMCell},
                                                      dtype=torch.qint8)
