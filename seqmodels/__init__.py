"""seqmodels: the recurrent models, tokenizers, decoding, checkpoints and training loop of RNN Playground."""
from .charlm import CharLM, CharLMConfig, encode_prompt, PromptError
from .checkpoint import CheckpointError, load_model, save_model
from .decoding import SamplingSettings, beam_search, generate, greedy_continuation, greedy_search, sample, search
from .fastgen import FastCharLM
from .seq2seq import Seq2Seq, Seq2SeqConfig
from .tokenizers import CharTokenizer, SentencePieceTokenizer, WordTokenizer
from .translator import TranslationError, Translator

__all__ = [
    "CharLM", "CharLMConfig", "CharTokenizer", "CheckpointError", "FastCharLM", "PromptError",
    "SamplingSettings", "Seq2Seq", "Seq2SeqConfig", "SentencePieceTokenizer", "TranslationError", "Translator",
    "WordTokenizer", "beam_search", "encode_prompt", "generate", "greedy_continuation", "greedy_search", "load_model",
    "sample", "save_model", "search",
]
