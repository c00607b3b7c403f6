"""The translate command line: training on pairs files and datasets, the split, evaluate's JSON, translate, bad input."""
import json
import sys

import pytest

from conftest import TINY_PAIRS
from seqmodels import load_model
from seqmodels.data.pairs import read_pairs, split_of, split_pairs
from conftest import run_command

TINY_MODEL = ["--hidden-size", "16", "--embedding-dim", "16", "--encoder-layers", "1", "--vocab-size", "300",
              "--max-tokens", "256", "--no-progress", "--dtype", "fp32", "--val-fraction", "0.2",
              "--test-fraction", "0.2", "--val-bleu-sentences", "5"]


def translate(*args, stdin=None):
    return run_command([sys.executable, "-m", "train.translate", *map(str, args)], input=stdin)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translate")
    pairs = folder / "pairs.tsv"
    pairs.write_text("".join(f"{en}\t{fr}\tCC-BY attribution\n" for en, fr in TINY_PAIRS) + "broken line\n\tno source\n",
                     encoding="utf-8")
    r = translate("--pairs", pairs, "--out", folder / "run", "--steps", "30", "--eval-interval", "10", *TINY_MODEL)
    assert r.returncode == 0, r.stderr[-3000:]
    return folder / "run", pairs, r


def test_pairs_file_skips_and_counts_malformed_lines_and_ignores_a_third_column(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("Hi.\tSalut !\tattribution #1\nno tab here\n\tempty source\nGo.\tVa !\n\n", encoding="utf-8")
    data = read_pairs(path)
    assert data.pairs == [("Hi.", "Salut !"), ("Go.", "Va !")] and data.skipped == 2


def test_the_split_never_puts_one_english_sentence_in_two_splits():
    pairs = [(f"Sentence number {i}.", f"Phrase {i} version {v}") for i in range(400) for v in range(3)]
    pairs += [(f"sentence   NUMBER {i}.", f"Variante {i}") for i in range(400)]  # same sentence, other case/spacing
    split = split_pairs(pairs)
    where = {}
    for name, part in split.items():
        for en, _ in part:
            where.setdefault(" ".join(en.lower().split()), set()).add(name)
    assert all(len(s) == 1 for s in where.values())
    assert {name: len(p) > 0 for name, p in split.items()} == {"train": True, "val": True, "test": True}
    assert split_of("Sentence number 7.") == split_of("  sentence NUMBER 7. ")


def test_train_writes_a_complete_checkpoint_and_reports_skipped_lines(trained):
    run, _, r = trained
    for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer.model", "README.md", "metrics.jsonl"]:
        assert (run / name).is_file(), name
    assert "skipped 2 malformed line(s)" in r.stderr
    card = (run / "README.md").read_text()
    assert "python -m train.translate --pairs" in card and "split by source sentence" in card


def test_evaluate_prints_bleu_chrf_and_n_as_its_last_line(trained):
    run, pairs, _ = trained
    r = translate("evaluate", "--checkpoint", run, "--pairs", pairs, "--split", "test", "--beam", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    test_sources = {en for en, _ in split_pairs(read_pairs(pairs).pairs, 0.2, 0.2)["test"]}
    assert result["n"] == len(test_sources) and 0 <= result["bleu"] <= 100 and 0 <= result["chrf"] <= 100
    assert result["skipped_lines"] == 2 and result["beam"] == 3


def test_bleu_is_100_for_exact_translations_and_uses_every_reference():
    from seqmodels.metrics import translation_scores
    assert translation_scores(["Je suis prêt ."], [["Je suis prêt ."]])["bleu"] == pytest.approx(100)
    multi = translation_scores(["Tu es en retard ."], [["Vous êtes en retard .", "Tu es en retard ."]])
    single = translation_scores(["Tu es en retard ."], [["Vous êtes en retard ."]])
    assert multi["bleu"] == pytest.approx(100) and single["bleu"] < 100


def test_translate_reads_arguments_or_stdin_and_prints_an_n_best_list(trained):
    run, _, _ = trained
    r = translate("translate", "--checkpoint", run, "We are ready.", "I am cold.")
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(r.stdout.splitlines()) == 2  # one line per sentence, even an empty translation
    r = translate("translate", "--checkpoint", run, "--n-best", "3", "--beam", "3", stdin="You are late.\n")
    assert r.returncode == 0 and len([line for line in r.stdout.splitlines() if "\t" in line]) == 3


def test_translate_names_bad_input_and_goes_on_with_the_rest(trained):
    run, _, _ = trained
    r = translate("translate", "--checkpoint", run, "?!...", "We are happy Ж.", "")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no letters or digits" in r.stderr and "Type a sentence" in r.stderr
    assert ("never saw Ж" in r.stderr) == ("Ж" not in r.stdout)  # named where the translation lacks it
    assert len(r.stdout.splitlines()) == 1  # the good sentence was translated


def test_translate_splits_a_paragraph_into_sentences_and_keeps_emoji_as_written(trained):
    run, _, _ = trained
    r = translate("translate", "--checkpoint", run, "😀 We are ready. You are late! 👍🏽")
    assert r.returncode == 0, r.stderr[-2000:]
    (line,) = r.stdout.splitlines()
    assert line.startswith("😀 ") and line.endswith(" 👍🏽") and "Kept as written" in r.stderr
    r = translate("translate", "--checkpoint", run, "--n-best", "3", "--beam", "3", "We are ready. You are late!")
    blocks = r.stdout.strip().split("\n\n")  # an n-best list per sentence
    assert r.returncode == 0 and len(blocks) == 2 and all(len(b.splitlines()) == 3 for b in blocks)


@pytest.mark.parametrize("args_fn, message", [
    (lambda t: ["--pairs", t / "missing.tsv", "--out", t / "o"], "not found"),
    (lambda t: ["--pairs", _write(t, "bad.tsv", "no tabs\nat all\n"), "--out", t / "o"], "no usable pairs"),
    (lambda t: ["evaluate", "--checkpoint", t / "none", "--pairs", _write(t, "p.tsv", "a\tb\n")], "not found"),
    (lambda t: ["translate", "--checkpoint", t, "hello"], "no config.json"),
])
def test_bad_input_gets_a_clear_message_and_no_traceback(tmp_path, args_fn, message):
    r = translate(*args_fn(tmp_path))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_a_charlm_checkpoint_is_refused_by_name(tmp_path, tokenizer):
    from conftest import make_model
    from seqmodels import save_model
    save_model(tmp_path, make_model(tokenizer), tokenizer)
    r = translate("translate", "--checkpoint", tmp_path, "hello")
    assert r.returncode == 2 and "not a translation model" in r.stderr


def _write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_pairs_files_card_names_no_languages_unless_told_and_init_keeps_the_models(trained, tmp_path):
    run, pairs, _ = trained
    assert "# source → target translation" in (run / "README.md").read_text(encoding="utf-8")
    r = translate("--pairs", pairs, "--src-lang", "de", "--tgt-lang", "ru", "--out", tmp_path / "de", "--steps", "2",
                  "--eval-interval", "2", *TINY_MODEL)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "# de → ru translation" in (tmp_path / "de" / "README.md").read_text(encoding="utf-8")
    # a run from a trained model keeps its languages unless told otherwise
    for out, flags, title in [("kept", [], "# de → ru translation"), ("told", ["--tgt-lang", "uk"], "# de → uk")]:
        r = translate("--pairs", pairs, "--init", tmp_path / "de", "--out", tmp_path / out, "--steps", "2",
                      "--eval-interval", "2", *flags, *TINY_MODEL[8:])
        assert r.returncode == 0, r.stderr[-2000:]
        assert title in (tmp_path / out / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("flags, message", [
    (["--vocab-size", "5"], "SentencePiece cannot make 5 pieces"),
    (["--val-fraction", "0.6", "--test-fraction", "0.6"], "leave nothing to train on"),
    (["--max-tokens", "0"], "--max-tokens: must be at least 1"),
])
def test_impossible_settings_get_one_line_and_no_run_folder(trained, tmp_path, flags, message):
    _, pairs, _ = trained
    r = translate("--pairs", pairs, "--out", tmp_path / "run", "--steps", "2", *TINY_MODEL, *flags)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def test_training_reads_a_local_hugging_face_translation_dataset_and_reverses(tmp_path):
    pytest.importorskip("datasets")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"translation": {"en": en, "fr": fr}}) for en, fr in TINY_PAIRS),
                    encoding="utf-8")
    out = tmp_path / "run"
    r = translate("--hf-dataset", rows, "--src-lang", "en", "--tgt-lang", "fr", "--reverse", "--out", out,
                  "--steps", "4", "--eval-interval", "2", *TINY_MODEL)
    assert r.returncode == 0, r.stderr[-2000:]
    _, tok, config = load_model(out)
    assert config["metrics"]["data"]["reverse"] is True and "fr → en" in (out / "README.md").read_text()


def test_evaluate_record_appends_the_result_to_the_cards_evaluation_section(trained, tmp_path):
    import shutil

    run, pairs, _ = trained
    copy = tmp_path / "model"
    shutil.copytree(run, copy)
    r = translate("evaluate", "--checkpoint", copy, "--pairs", pairs, "--split", "val", "--beam", "1", "--record")
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    card = (copy / "README.md").read_text().rstrip().splitlines()
    assert card[-2] == "## Evaluation" and "--record" not in card[-1]
    assert card[-1].startswith("- `python -m train.translate evaluate") and f"BLEU {result['bleu']}" in card[-1]


def test_int8_is_one_flag_with_each_commands_default_and_the_old_float_still_works(capsys):
    from train.translate import build_parser
    parse = build_parser().parse_args
    assert parse(["translate", "hi"]).int8 is True and parse(["translate", "--no-int8", "hi"]).int8 is False
    assert parse(["evaluate", "--checkpoint", "c", "--pairs", "p"]).int8 is False
    assert parse(["evaluate", "--checkpoint", "c", "--pairs", "p", "--int8"]).int8 is True
    assert "deprecated" not in capsys.readouterr().err
    assert parse(["translate", "--float", "hi"]).int8 is False
    assert "warning: --float is deprecated; use --no-int8" in capsys.readouterr().err


def test_train_writes_to_runs_translate_by_default():
    from train.translate import build_parser
    assert build_parser().parse_args(["train", "--pairs", "p.tsv"]).out == "runs/translate"


@pytest.mark.parametrize("command, defaults", [
    ("train", ["(default: 512)", "(default: runs/translate)", "(default: 100000)", "(default: 200)", "(default: 400)"]),
    ("evaluate", ["(default: all)", "(default: 5)", "(default: False)"]),
    ("translate", ["(default: 5)", "(default: True)", "(default: checkpoints/translate-en-fr)"]),
])
def test_help_of_every_translate_command_shows_its_defaults(command, defaults, monkeypatch, capsys):
    from test_cli import _help
    from train.translate import build_parser
    shown = _help(build_parser, [command], monkeypatch, capsys)
    assert all(d in shown for d in defaults), shown


def test_resume_with_another_model_option_or_preset_is_refused_and_names_it(tmp_path):
    """--resume goes on with the run's own model and tokenizer: options given with other values than the run's are
    refused by name (they used to be dropped without a word); the run's own values, given again, are not."""
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{en}\t{fr}\n" for en, fr in TINY_PAIRS), encoding="utf-8")
    run = ["--pairs", pairs, "--out", tmp_path / "run", "--eval-interval", "2", "--keep-resume"]
    first = translate(*run, "--steps", "2", *TINY_MODEL)
    assert first.returncode == 0, first.stderr[-3000:]
    before = (tmp_path / "run" / "resume.pt").stat().st_mtime
    r = translate(*run, "--steps", "4", "--resume", "--hidden-size", "32", "--unidirectional", "--cell", "gru",
                  "--tokenizer", "word")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    for clash in ["--hidden-size 32 (the run's: 16)", "--unidirectional (the run's: False)",
                  "--tokenizer word (the run's: sentencepiece)"]:
        assert clash in r.stderr, r.stderr
    assert "--cell" not in r.stderr  # gru is the run's own
    preset = translate(*run, "--steps", "4", "--resume", "--preset", "tutorial")
    assert preset.returncode != 0 and "--preset tutorial" in preset.stderr and "Traceback" not in preset.stderr
    assert (tmp_path / "run" / "resume.pt").stat().st_mtime == before
    again = translate(*run, "--steps", "4", "--resume", *TINY_MODEL)
    assert again.returncode == 0 and "resumed from" in again.stderr, again.stderr[-3000:]


def test_init_trains_a_trained_model_further_from_its_own_weights_and_tokenizer(trained, tmp_path):
    """--init starts a new run from a checkpoint: its first evaluation scores the starting model's own loss (a fresh
    model's would be far higher), the tokenizer is the checkpoint's, and model options that differ are refused."""
    run, pairs, _ = trained
    start = json.loads((run / "config.json").read_text())["metrics"]
    out = tmp_path / "further"
    r = translate("--pairs", pairs, "--init", run, "--out", out, "--steps", "4", "--eval-interval", "2",
                  "--repeat-short", "3", *TINY_MODEL[8:])  # the loop's and split's flags; the model's: the checkpoint's
    assert r.returncode == 0, r.stderr[-3000:]
    short = sum(len(en.split()) <= 3 for en, _ in split_pairs(read_pairs(pairs).pairs, 0.2, 0.2)["train"])
    assert short and f"{short} pairs of up to 3 source words appear 3 times an epoch" in r.stderr
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 0 and first["val_loss"] == pytest.approx(start["val_loss"], abs=1e-4)
    assert (out / "tokenizer.model").read_bytes() == (run / "tokenizer.model").read_bytes()
    assert f"Started from the weights and tokenizer of `{run}`" in (out / "README.md").read_text()
    clash = translate("--pairs", pairs, "--init", run, "--out", tmp_path / "other", "--hidden-size", "32", "--steps", "2")
    assert clash.returncode != 0 and "--hidden-size 32 (the model's: 16)" in clash.stderr, clash.stderr
    both = translate("--pairs", pairs, "--init", run, "--out", out, "--resume", "--steps", "2")
    assert both.returncode != 0 and "give one of them" in both.stderr
    itself = translate("--pairs", pairs, "--init", run, "--out", run, "--overwrite", "--steps", "2")
    assert itself.returncode != 0 and "--out must differ from --init" in itself.stderr
    missing = translate("--pairs", pairs, "--init", tmp_path / "nothing", "--out", tmp_path / "x", "--steps", "2")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr and "nothing" in missing.stderr
    assert not (tmp_path / "other").exists() and not (tmp_path / "x").exists()


def test_each_evaluation_reports_the_greedy_bleu_of_the_validation_sample_it_was_asked_for(trained):
    run, _, _ = trained
    evals = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["split"] == "val"]
    assert [r["step"] for r in evals] == [0, 10, 20, 30]
    for r in evals:  # --val-bleu-sentences 5 in TINY_MODEL (the tiny split may hold fewer)
        assert 0 < r["val_bleu_n"] <= 5 and 0.0 <= r["val_bleu"] <= 100.0
