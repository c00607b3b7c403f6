"""seqmodels: the recurrent models, tokenizers, decoding, checkpoints and training loop of RNN Playground."""
from .charlm import CharLM, CharLMConfig, encode_prompt, PromptError
from .checkpoint import CheckpointError, load_model, save_model
from .decoding import SamplingSettings, generate, greedy, sample
from .fastgen import FastCharLM
from .tokenizers import CharTokenizer

__all__ = [
    "CharLM", "CharLMConfig", "CharTokenizer", "CheckpointError", "FastCharLM", "PromptError",
    "SamplingSettings", "encode_prompt", "generate", "greedy", "load_model", "sample", "save_model",
]
