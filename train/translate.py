"""Train, evaluate and use English-to-French (or any pair) seq2seq translation models with attention.

    python -m train.translate --pairs eng-fra.txt --out runs/en-fr                  # train (SentencePiece, biGRU, attention)
    python -m train.translate --pairs eng-fra.txt --preset tutorial --out runs/tut  # the PyTorch tutorial's model
    python -m train.translate --hf-dataset NAME --src-lang en --tgt-lang fr --out runs/hf
    python -m train.translate evaluate --checkpoint checkpoints/translate-en-fr --pairs eng-fra.txt --split test --beam 5
    python -m train.translate translate --checkpoint checkpoints/translate-en-fr "How are you?"   # or lines on stdin

Pairs files are `source<TAB>target` per line (a third column is ignored; malformed lines are skipped
and counted). The train/validation/test split is by the first column's sentence, through a hash, so
every translation of one sentence falls in one split. `--reverse` trains the second column to the first.
Several processes: `torchrun --nproc_per_node 4 -m train.translate ...`.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from seqmodels.cards import build_card, file_digest, record_evaluation
from seqmodels.checkpoint import CheckpointSpec
from seqmodels.data import DataError
from seqmodels.data.pairs import PairsTask, group_references, load_hf_pairs, read_pairs, split_pairs
from seqmodels.decoding import MAX_BEAM
from seqmodels.metrics import translation_scores
from seqmodels.seq2seq import ATTENTIONS, Seq2Seq, Seq2SeqConfig
from seqmodels.tokenizers import SentencePieceTokenizer, TokenizerPair, WordTokenizer, source_and_target
from seqmodels.training import TrainConfig
from seqmodels.translator import COVERAGE, TranslationError, Translator
from train.common import (COUNT, FRACTION, NON_NEGATIVE, add_checkpoint_arg, add_command, add_hf_args, add_int8_arg,
                          add_loop_args, add_out_arg, add_record_arg, add_split_arg, add_threads_arg, command_line,
                          add_model_option, fail, fill_unset, load_or_fail, number, prepare_out, provenance,
                          refuse_new_model_options, run_script, schedule_text, script_parser, set_threads,
                          train_and_card, train_config)

# the PyTorch "NLP From Scratch: Translation with a Sequence to Sequence Network and Attention" tutorial:
# word vocabularies per language, a one-layer GRU of 128 each way, Bahdanau attention from the previous
# decoder state, the context fed into the decoder GRU, the output read from the GRU alone, dropout 0.1,
# plain cross-entropy, greedy decoding. Our loop adds its masks (the tutorial let padding into both).
TUTORIAL_PRESET = dict(tokenizer="word", embedding_dim=128, hidden_size=128, encoder_layers=1, decoder_layers=1,
                       bidirectional=False, attention="additive", context_feeding=True, readout_context=False,
                       tie_embeddings=False, dropout=0.1, label_smoothing=0.0)

# translation's loop where it differs from TrainConfig's: a step cap that --time-budget usually ends first,
# a longer warm-up and rarer evaluations (each one translates validation sentences for BLEU)
TRAINING = TrainConfig(max_steps=100_000, warmup_steps=200, eval_interval=400)
# split_pairs' fractions; evaluate assumes them for a checkpoint that did not record its own
VAL_FRACTION, TEST_FRACTION = 0.05, 0.05
SHORT_WORDS = 3  # --repeat-short's sources: "Hello!", "Sit down.", "I love you."
BEAM, ALPHA = 5, 1.0  # evaluate's and translate's search: the beam of the shipped figures, plain length normalisation


def load_pairs(args):
    try:
        if args.pairs:
            data = read_pairs(args.pairs)
            desc = f"`{Path(args.pairs).name}` ({len(data.pairs):,} pairs, sha256 {file_digest(args.pairs)}…)"
        else:
            data = load_hf_pairs(args.hf_dataset, *languages(args), args.hf_split, args.hf_config)
            desc = f"Hugging Face dataset `{args.hf_dataset}` ({len(data.pairs):,} pairs)"
    except DataError as e:
        fail(str(e))
    if data.skipped:
        logging.warning("skipped %d malformed line(s) (fewer than two columns or an empty side)", data.skipped)
    return data, desc


def languages(args) -> tuple[str, str]:
    """(source, target): an --hf-dataset's keys, en and fr unless given; a pairs file names no languages, so its
    card says "source" and "target" unless told (it said "en → fr" for any pairs)."""
    default = ("en", "fr") if args.hf_dataset else ("source", "target")
    return args.src_lang or default[0], args.tgt_lang or default[1]


def oriented(pairs, reverse: bool):
    return [(b, a) for a, b in pairs] if reverse else pairs


# --------------------------------------------------------------------------- train

def model_card(args, cfg: TrainConfig, data_desc: str, split_sizes: dict, config: Seq2SeqConfig, tok_desc: str,
               n_params: int, metrics: dict, summary: dict | None) -> str:
    src, tgt = languages(args)
    direction = f"{tgt} → {src}" if args.reverse else f"{src} → {tgt}"
    training = [
        *provenance("train.translate", f"{data_desc}; split by source sentence: {split_sizes['train']:,} train / "
                    f"{split_sizes['val']:,} validation / {split_sizes['test']:,} test pairs", config, args.half),
        f"- Batches of up to {args.max_tokens} tokens, {schedule_text(cfg)}, time budget "
        f"{cfg.time_budget_s / 60:g} min, seed {cfg.seed}",
    ]
    if args.repeat_short > 1:
        training.append(f"- Training pairs whose source has up to {SHORT_WORDS} words appear {args.repeat_short} times "
                        "an epoch (`--repeat-short`)")
    if args.init:
        training.append(f"- Started from the weights and tokenizer of `{args.init}` (its card tells how that was trained)")
    results = [
        f"- Best validation loss: {metrics['val_loss']:.4f} nats/token (plain cross-entropy), greedy BLEU "
        f"{metrics.get('val_bleu', float('nan')):.1f} on {metrics.get('val_bleu_n', 0)} validation sentences, "
        f"at step {metrics['step']} ({metrics['elapsed_s'] / 60:.1f} min into training)",
    ]
    if summary:
        results.append(f"- Training wall time: {summary['elapsed_s'] / 60:.1f} min for {summary['steps']} steps")
    results += ["", "Evaluate: `python -m train.translate evaluate --checkpoint THIS_FOLDER --pairs FILE --split test --beam 5`"]
    return build_card(
        ["rnn-playground", "translation", "seq2seq", "attention"],
        f"{direction} translation: {config.cell.upper()} encoder-decoder with {config.attention} attention",
        f"{'Bidirectional ' if config.bidirectional else ''}{config.encoder_layers}-layer encoder, "
        f"{config.decoder_layers}-layer decoder of {config.hidden_size}, {n_params:,} parameters; "
        f"{tok_desc}. Trained by RNN Playground's `train/translate.py`.",
        [("Training", training), ("Metrics", results)])


def refuse_a_new_model(args, preset: dict, config: Seq2SeqConfig, tokenizer, init: bool = False) -> None:
    """--resume goes on with the run's own model and tokenizer, --init with the starting model's: refuse model
    options (or --preset) that differ."""
    source, target = source_and_target(tokenizer)
    shared = source is target
    runs = {**{dest: getattr(config, dest) for dest in args.model_defaults if hasattr(config, dest)},
            "tokenizer": "sentencepiece" if shared else "word", "unidirectional": not config.bidirectional}
    if shared:
        runs["vocab_size"] = config.src_vocab_size
    if preset and any(runs.get(k, getattr(config, k, None)) != v for k, v in preset.items()):
        fail(f"{args.init} holds another model than --preset {args.preset}'s, and --init trains it further as it was "
             "built: drop --preset" if init else
             f"{args.out} holds a run of another model than --preset {args.preset}'s, and --resume continues it as it "
             "was built: drop --preset, or start a new run in another folder")
    refuse_new_model_options(args, runs, "a translation model" if init else "a translation run", init)


def cmd_train(args) -> None:
    set_threads(args)
    if args.val_fraction + args.test_fraction >= 1:
        fail(f"--val-fraction {args.val_fraction:g} and --test-fraction {args.test_fraction:g} leave nothing to train "
             "on")
    if args.init and args.resume:
        fail("--init starts a new run from a trained model and --resume continues a run: give one of them")
    if args.init and Path(args.out).resolve() == Path(args.init).resolve():
        fail("--out must differ from --init (the starting model would be overwritten)")
    start = None  # the trained model --init names; its weights, config, tokenizer and languages are the run's
    if args.init:  # first, as its languages (unless given) name an --hf-dataset's columns and the card's title
        start, tokenizer, start_meta = load_or_fail(args.init, "seq2seq")
        known = start_meta.get("metrics", {}).get("data", {}).get("languages") or (None, None)
        args.src_lang, args.tgt_lang = args.src_lang or known[0], args.tgt_lang or known[1]
    data, data_desc = load_pairs(args)
    split = split_pairs(data.pairs, args.val_fraction, args.test_fraction)
    train_pairs, val_pairs = oriented(split["train"], args.reverse), oriented(split["val"], args.reverse)
    if not train_pairs or not val_pairs:
        fix = ("a smaller --val-fraction or --test-fraction" if not train_pairs else "a larger --val-fraction")
        fail(f"the split left {len(train_pairs)} training and {len(val_pairs)} validation pairs; use more pairs or "
             f"{fix}")
    preset = dict(TUTORIAL_PRESET) if args.preset == "tutorial" else {}
    resumed = prepare_out(args, Seq2SeqConfig)
    if resumed is not None:
        config, tokenizer = resumed
        refuse_a_new_model(args, preset, config, tokenizer)
    elif args.init:
        config = start.config
        refuse_a_new_model(args, preset, config, tokenizer, init=True)
    else:
        fill_unset(args)
        tok_kind = preset.pop("tokenizer", args.tokenizer)
        t0 = time.time()
        if tok_kind == "sentencepiece":
            texts = [s for p in train_pairs for s in p]
            try:
                tokenizer = SentencePieceTokenizer.train(texts, vocab_size=args.vocab_size)
            except RuntimeError as e:  # its checks: too few pieces for the characters, too many for the text
                why = str(e).strip().splitlines()[-1]
                fail(f"SentencePiece cannot make {args.vocab_size:,} pieces of these pairs ({why}); change "
                     "--vocab-size, or use --tokenizer word")
        else:
            tokenizer = TokenizerPair(WordTokenizer.train((s for s, _ in train_pairs), min_count=args.min_count),
                                      WordTokenizer.train((t for _, t in train_pairs), min_count=args.min_count))
        logging.info("%s tokenizer trained in %.1f s", tok_kind, time.time() - t0)
        src_tok, tgt_tok = source_and_target(tokenizer)
        model_args = dict(cell=args.cell, embedding_dim=args.embedding_dim, hidden_size=args.hidden_size,
                          encoder_layers=args.encoder_layers, decoder_layers=args.decoder_layers,
                          bidirectional=not args.unidirectional, attention=args.attention,
                          context_feeding=args.context_feeding, dropout=args.dropout,
                          label_smoothing=args.label_smoothing)
        model_args.update(preset)
        try:
            config = Seq2SeqConfig(src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size,
                                   shared_vocab=src_tok is tgt_tok, **model_args)
        except ValueError as e:
            fail(str(e))
    src_tok, tgt_tok = source_and_target(tokenizer)
    tok_desc = (f"a shared SentencePiece vocabulary of {src_tok.vocab_size:,} pieces with byte fallback"
                if src_tok is tgt_tok else
                f"word vocabularies of {src_tok.vocab_size:,} source and {tgt_tok.vocab_size:,} target words "
                f"(words seen fewer than {args.min_count} times are <unk>)")

    def encode(pairs):
        return [(src_tok.encode(s).ids, tgt_tok.encode(t).ids) for s, t in pairs]

    t0 = time.time()
    train_ex, val_ex = encode(train_pairs), encode(val_pairs)
    if args.repeat_short > 1:  # greetings and one-word orders are rare in Tatoeba, yet what people type first
        short = [ex for ex, (s, _) in zip(train_ex, train_pairs) if len(s.split()) <= SHORT_WORDS]
        train_ex += short * (args.repeat_short - 1)
        logging.info("%d pairs of up to %d source words appear %d times an epoch", len(short), SHORT_WORDS,
                     args.repeat_short)
    logging.info("encoded %d train / %d validation pairs in %.1f s", len(train_ex), len(val_ex), time.time() - t0)
    model = start if start is not None else Seq2Seq(config)
    n_params = model.num_parameters()
    split_sizes = {k: len(v) for k, v in split.items()}
    # a fixed sample of validation sentences, translated greedily at each evaluation: BLEU as it trains
    val_sources, val_refs = group_references(val_pairs)
    val_sources, val_refs = val_sources[:args.val_bleu_sentences], val_refs[:args.val_bleu_sentences]
    cfg = train_config(args, args.out)

    data = {"val_fraction": args.val_fraction, "test_fraction": args.test_fraction, "reverse": args.reverse,
            "split_sizes": split_sizes, "languages": list(languages(args))}
    try:
        task = PairsTask(train_ex, val_ex, CheckpointSpec(tokenizer, args.half, {"data": data}),
                         max_tokens=args.max_tokens, seed=args.seed, bleu_sources=val_sources, bleu_refs=val_refs)
    except DataError as e:
        fail(str(e))
    logging.info("%s parameters; %d train / %d validation pairs; %d batches; %s",
                 f"{n_params:,}", len(train_ex), len(val_ex), len(task.train_batches), tok_desc)
    summary = train_and_card(model, task, cfg, lambda best, run: model_card(
        args, cfg, data_desc, split_sizes, config, tok_desc, n_params, best, run))
    if summary is not None:
        print(json.dumps(summary))


# --------------------------------------------------------------------------- evaluate and translate

def translator_or_fail(args) -> tuple[Translator, dict]:
    """The Translator for ``args.checkpoint`` (int8 with ``args.int8``) and its config, or an exit that says why not."""
    if not 1 <= args.beam <= MAX_BEAM:
        fail(f"--beam must be between 1 and {MAX_BEAM}")
    model, tokenizer, config = load_or_fail(args.checkpoint, "seq2seq")
    return Translator(model, tokenizer, quantize=args.int8), config


def cmd_evaluate(args) -> None:
    set_threads(args)
    translator, config = translator_or_fail(args)
    data_cfg = config.get("metrics", {}).get("data", {})
    try:
        data = read_pairs(args.pairs)
    except DataError as e:
        fail(str(e))
    pairs = data.pairs
    if args.split != "all":  # the split the checkpoint was trained with, recomputed from the same hash
        pairs = split_pairs(pairs, data_cfg.get("val_fraction", VAL_FRACTION),
                            data_cfg.get("test_fraction", TEST_FRACTION))[args.split]
    pairs = oriented(pairs, data_cfg.get("reverse", False))
    if args.limit:
        pairs = pairs[:args.limit]
    if not pairs:
        fail(f"no pairs to evaluate in the {args.split} split of {args.pairs}")
    sources, refs = group_references(pairs)
    t0 = time.time()
    hyps = translator.translate_many(sources, args.beam, args.alpha, coverage=args.coverage)
    seconds = time.time() - t0
    # multi-reference: a source with several translations in the file is scored once, against all of them;
    # single-reference pairs the first translation only, for comparison with one-reference test sets
    result = translation_scores(hyps, refs)
    single = translation_scores(hyps, [r[:1] for r in refs])
    result.update({"bleu_single_ref": single["bleu"], "chrf_single_ref": single["chrf"], "n": len(sources),
                   "pairs": len(pairs), "skipped_lines": data.skipped, "beam": args.beam, "alpha": args.alpha,
                   "coverage": args.coverage if args.beam > 1 else 0.0, "split": args.split, "int8": args.int8,
                   "checkpoint": args.checkpoint, "file": args.pairs, "seconds": round(seconds, 1)})
    if args.show:
        for s, h, r in list(zip(sources, hyps, refs))[:args.show]:
            print(f"EN  {s}\nOUT {h}\nREF {r[0]}\n", file=sys.stderr)
    if args.record:
        record_evaluation(args.checkpoint, f"- `{command_line('train.translate', omit=('--record',))}`: "
                          f"BLEU {result['bleu']}, chrF {result['chrf']} on {result['n']:,} sources ({result['pairs']:,} "
                          f"pairs; single-reference BLEU {result['bleu_single_ref']}); {result['seconds']} s")
    print(json.dumps(result, ensure_ascii=False))


def cmd_translate(args) -> None:
    set_threads(args)
    translator, _ = translator_or_fail(args)
    sentences = args.sentences or [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not sentences:
        fail("give sentences as arguments or one per line on stdin")
    status = 0
    for text in sentences:  # each may hold several sentences: translate_passage splits it and keeps emoji and URLs
        try:
            result = translator.translate_passage(text, args.beam, args.alpha, args.n_best, args.coverage)
        except TranslationError as e:
            print(f"error: {e} (input: {text[:60]!r})", file=sys.stderr)
            status = 1
            continue
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        if args.n_best > 1:  # an n-best list per sentence the model read
            for sentence in result.sentences:
                for c in sentence.candidates:
                    print(f"{c.normalized:8.3f}\t{c.text}")
                print()
        else:
            print(result.text)
    raise SystemExit(status)


# --------------------------------------------------------------------------- CLI

def add_search_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--beam", type=int, default=BEAM, help=f"beam size, 1 to {MAX_BEAM}; 1 is greedy")
    parser.add_argument("--alpha", type=number(float, 0), default=ALPHA, help="length normalisation strength (0: none)")
    parser.add_argument("--coverage", type=number(float, 0), default=COVERAGE,
                        help="beam search: what ending before every source word is read costs (0: nothing)")


def build_parser() -> argparse.ArgumentParser:
    p, sub, t, src = script_parser("train.translate", __doc__)
    src.add_argument("--pairs", help="a tab-separated file: source<TAB>target per line")
    add_hf_args(t, src, 'a Hugging Face translation dataset ({"translation": {"en": ..., "fr": ...}})')
    t.add_argument("--src-lang", help="the source language: its key in an --hf-dataset (default en), and the "
                   "card's title (with --pairs too; unset there, the card says 'source'; with --init, the model's)")
    t.add_argument("--tgt-lang", help="the target language, as --src-lang (default fr; 'target')")
    t.add_argument("--reverse", action="store_true", help="translate the second column into the first")
    t.add_argument("--val-fraction", type=FRACTION, default=VAL_FRACTION,
                   help="share of source sentences that validate")
    t.add_argument("--test-fraction", type=FRACTION, default=TEST_FRACTION,
                   help="share of source sentences held out for test")
    add_out_arg(t, "runs/translate")
    t.add_argument("--init", metavar="CHECKPOINT",
                   help="start from this trained model's weights and tokenizer (a new schedule; its split is the "
                        "same for the same pairs and fractions): to train it longer or on your own pairs")
    t.add_argument("--preset", choices=["tutorial"], help="the PyTorch tutorial's model (overrides the model flags)")
    d = Seq2SeqConfig
    add_model_option(t, "--tokenizer", "sentencepiece", "one SentencePiece vocabulary for both languages, or a word "
                     "vocabulary for each", choices=["sentencepiece", "word"])
    add_model_option(t, "--vocab-size", d.src_vocab_size, "SentencePiece pieces, shared by both languages", type=COUNT)
    t.add_argument("--min-count", type=COUNT, default=2, help="word tokenizer: rarer words become <unk>")
    add_model_option(t, "--cell", d.cell, "the encoder's and decoder's cell", choices=["gru", "lstm"])
    add_model_option(t, "--embedding-dim", d.embedding_dim, "size of a token's vector", type=COUNT)
    add_model_option(t, "--hidden-size", d.hidden_size,
                     "the decoder's units (a bidirectional encoder has half in each direction)", type=COUNT)
    add_model_option(t, "--encoder-layers", d.encoder_layers, "stacked encoder layers", type=COUNT)
    add_model_option(t, "--decoder-layers", d.decoder_layers, "stacked decoder layers", type=COUNT)
    add_model_option(t, "--unidirectional", not d.bidirectional, "a one-way encoder", action="store_true")
    add_model_option(t, "--attention", d.attention, "how the decoder scores the source", choices=ATTENTIONS)
    add_model_option(t, "--context-feeding", d.context_feeding,
                     "Bahdanau's layout: the context goes into the decoder RNN", action="store_true")
    add_model_option(t, "--dropout", d.dropout, "between layers and before the output", type=FRACTION)
    add_model_option(t, "--label-smoothing", d.label_smoothing,
                     "probability spread over the other tokens in the training loss", type=FRACTION)
    t.add_argument("--max-tokens", type=COUNT, default=4096,
                   help="tokens per batch (longest side x sentences), per process")
    add_loop_args(t, TRAINING, steps_help="a step cap; --time-budget usually ends training first")
    t.add_argument("--repeat-short", type=COUNT, default=1, help=f"training pairs whose source has up to "
                   f"{SHORT_WORDS} words appear this many times an epoch (short sentences are rare in Tatoeba)")
    t.add_argument("--val-bleu-sentences", type=NON_NEGATIVE, default=500,
                   help="validation sentences translated at each evaluation (0: none)")
    t.set_defaults(func=cmd_train)

    e = add_command(sub, "evaluate", "BLEU and chrF (sacrebleu) of a checkpoint on a pairs file")
    add_checkpoint_arg(e, "a translation model")
    e.add_argument("--pairs", required=True, help="a tab-separated file: source<TAB>target per line")
    add_split_arg(e, ["all", "train", "val", "test"])
    add_search_args(e)
    e.add_argument("--limit", type=NON_NEGATIVE, default=0, help="only the first N pairs (0: all)")
    add_int8_arg(e, default=False)
    e.add_argument("--show", type=NON_NEGATIVE, default=0, help="print N example translations to stderr")
    add_record_arg(e)
    add_threads_arg(e)
    e.set_defaults(func=cmd_evaluate)

    r = add_command(sub, "translate", "translate sentences given as arguments or on stdin")
    add_checkpoint_arg(r, "a translation model", default="checkpoints/translate-en-fr")
    r.add_argument("sentences", nargs="*", help="texts to translate, each one sentence or several, split and "
                   "translated one by one (none: one text per line on stdin)")
    add_search_args(r)
    r.add_argument("--n-best", type=COUNT, default=1, help="print this many candidates with their scores")
    add_int8_arg(r, default=True, old="--float")
    add_threads_arg(r)
    r.set_defaults(func=cmd_translate)
    return p


def main(argv: list[str] | None = None) -> None:
    run_script(build_parser(), argv)


if __name__ == "__main__":
    main()
