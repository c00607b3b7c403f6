"""Captioning: the model's invariants, the data formats, the command line and the tab's handler."""
import base64
import io
import json
import shutil

import gradio as gr
import numpy as np
import pytest
import torch
from gradio.data_classes import ImageData
from PIL import Image

from demos import caption as tab
from seqmodels import load_model, save_model
from seqmodels.caption import NEVER_SAID
from seqmodels.data import DataError
from seqmodels.data.captions import caption_set, read_captions, training_splits
from seqmodels.decoding import beam_search, greedy_search
from seqmodels.image_captioner import ImageCaptioner
from seqmodels.decoding import searchable_log_probs
from seqmodels.metrics import caption_scores
from seqmodels.tokenizers import BOS_ID, EOS_ID, UNK_ID, WordTokenizer, caption_words

from conftest import TINY_CAPTION_FLAGS, caption_cli, make_captioner

IMAGES = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_beam_size_one_matches_greedy():
    model = make_captioner(seed=3)
    greedy = greedy_search(model, IMAGES, max_len=12)
    beam = beam_search(model, IMAGES, beam_size=1, max_len=12)
    assert [g.tokens for g in greedy] == [b[0].tokens for b in beam]


def test_captions_never_say_unk_even_when_the_model_prefers_it():
    model = make_captioner(seed=1)
    with torch.no_grad():
        model.out.bias[UNK_ID] = 50.0  # <unk> would win every step
    assert all(UNK_ID not in h.tokens for h in greedy_search(model, IMAGES, max_len=8))
    assert all(UNK_ID not in h.tokens for hyps in beam_search(model, IMAGES, beam_size=3, max_len=8) for h in hyps)
    assert all(h.tokens for h in greedy_search(model, IMAGES, max_len=8))  # it says real words instead


def test_attention_weights_over_the_grid_sum_to_one_for_every_word():
    model = make_captioner()
    for hyps in beam_search(model, IMAGES, beam_size=3, max_len=8):
        for h in hyps:
            assert h.attention.shape == (len(h.tokens) + h.finished, 64)  # 32 px / stride 4 = an 8 x 8 grid
            torch.testing.assert_close(h.attention.sum(-1), torch.ones(h.attention.shape[0]))


def test_training_decode_equals_stepping_and_the_regulariser_ignores_padding():
    model = make_captioner()
    ctx, state = model.begin(IMAGES)
    tokens = torch.tensor([[BOS_ID, 5, 6, 7]] * 3)
    full, _, full_attn = model.decode(tokens, state, ctx)
    steps = []
    for t in range(4):
        logp, state, _ = model.step_log_probs(tokens[:, t], state, ctx)
        steps.append(logp)
    torch.testing.assert_close(torch.stack(steps, 1), searchable_log_probs(full.flatten(0, 1), NEVER_SAID).view_as(full),
                               atol=1e-5, rtol=1e-5)
    out = torch.tensor([[5, 6, 7, EOS_ID]] * 3)
    pad = torch.zeros(3, 3, dtype=torch.long)
    a = model(IMAGES, tokens, out).loss
    b = model(IMAGES, torch.cat([tokens, pad], 1), torch.cat([out, pad], 1)).loss
    torch.testing.assert_close(a, b)


def test_captions_sharing_an_image_cost_the_same_loss_as_repeating_the_image():
    model = make_captioner(seed=2, word_loss=1.0)
    tokens_in = torch.tensor([[BOS_ID, 5, 6], [BOS_ID, 7, 0], [BOS_ID, 8, 9], [BOS_ID, 5, 0]])
    tokens_out = torch.tensor([[5, 6, EOS_ID], [7, EOS_ID, 0], [8, 9, EOS_ID], [5, EOS_ID, 0]])
    index = torch.tensor([0, 0, 1, 2])
    shared = model(IMAGES, tokens_in, tokens_out, image_index=index)
    repeated = model(IMAGES[index], tokens_in, tokens_out)
    torch.testing.assert_close(shared.logits, repeated.logits)
    # the word targets differ: shared, image 0 is asked for the words of both its captions (5, 6 and 7)
    feats = model.features(IMAGES)
    logits = model.words(feats.mean(dim=1))[:, EOS_ID + 1:]
    present = torch.zeros(3, model.config.vocab_size)
    present[0, [5, 6, 7]] = present[1, [8, 9]] = present[2, 5] = 1
    present = present[:, EOS_ID + 1:]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, present, reduction="none").sum(1)
    torch.testing.assert_close(model._word_loss(feats, tokens_out, index), (bce / present.sum(1)).mean())


def test_a_training_batch_gives_each_image_distinct_captions():
    from seqmodels.data.captions import CaptionTask

    caps = [[[5], [6], [7]], [[8], [9]]]
    task = CaptionTask(caps, [[[5]]], checkpoint=None, batch_size=4, image_size=32, train_images=IMAGES[:2],
                       val_images=IMAGES[:1], captions_per_image=2)
    batch = task.get_batch(torch.Generator().manual_seed(0))
    assert batch["images"].shape[0] == 4 and batch["tokens_out"].shape[0] == 8
    for row in range(4):
        words = batch["tokens_out"][batch["image_index"] == row, 0].tolist()
        assert len(set(words)) == 2
        assert set(words) <= {5, 6, 7} or set(words) == {8, 9}


def test_a_batch_captions_each_image_as_it_would_alone():
    model = make_captioner(seed=1)
    together = beam_search(model, IMAGES, beam_size=3, max_len=8)
    for i in range(3):
        alone = beam_search(model, IMAGES[i:i + 1], beam_size=3, max_len=8)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[i]]


def test_checkpoint_round_trip_restores_identical_captions(tmp_path):
    tok = WordTokenizer.train(["a red square", "a blue circle"], min_count=1)
    model = make_captioner(vocab=tok.vocab_size)
    save_model(tmp_path, model, tok)
    again, tok2, config = load_model(tmp_path)
    assert config["model_type"] == "captioner" and again.config.widths == (8, 16)
    a, b = beam_search(model, IMAGES, beam_size=2, max_len=6), beam_search(again, IMAGES, beam_size=2, max_len=6)
    assert [h[0].tokens for h in a] == [h[0].tokens for h in b]


def test_captions_files_in_every_format_and_missing_images_are_counted(dataset, tmp_path):
    caps, skipped = read_captions(dataset / "captions.txt")
    assert skipped == 1 and len(caps["red_square_0.jpg"]) == 2
    data = caption_set(dataset / "images", dataset / "captions.txt", dataset / "train.txt")
    assert data.missing == 1 and "missing.jpg" not in data.captions and len(data.captions) == 12
    as_json = tmp_path / "c.json"
    as_json.write_text(json.dumps({"red_square_0.jpg": ["a red square"], "x.jpg": "one"}))
    as_jsonl = tmp_path / "c.jsonl"
    as_jsonl.write_text('{"image": "red_square_0.jpg", "caption": "a red square"}\nnot json\n')
    as_csv = tmp_path / "c.csv"
    as_csv.write_text("image,caption\nred_square_0.jpg,a red square\nblue_circle_1.jpg,\n")
    assert read_captions(as_json)[0]["x.jpg"] == ["one"]
    assert read_captions(as_jsonl) == ({"red_square_0.jpg": ["a red square"]}, 1)
    assert read_captions(as_csv) == ({"red_square_0.jpg": ["a red square"]}, 1)


def test_a_captions_file_with_too_few_images_to_split_says_so(dataset, tmp_path):
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"red_square_0.jpg": ["a red square"]}))
    with pytest.raises(DataError, match="no training images: 0 captioned image"):
        training_splits(images=str(dataset / "images"), captions=str(one))


def test_coco_scores_are_100_for_a_reference_and_ignore_case_and_punctuation():
    refs = {"a": ["A dog runs on the grass .", "a brown dog running"], "b": ["a man rides a bike", "a cyclist"]}
    s = caption_scores({"a": "a dog runs on the grass", "b": "A man rides a bike!"}, refs)
    assert s["bleu1"] == pytest.approx(100) and s["bleu4"] == pytest.approx(100, abs=0.01) and s["n"] == 2
    worse = caption_scores({"a": "a cat sleeps", "b": "a man rides a bike"}, refs)
    assert worse["bleu4"] < s["bleu4"] and worse["cider"] < s["cider"]
    assert caption_words("A dog's ball, red.") == ["a", "dog", "'s", "ball", "red"]


def test_train_writes_a_checkpoint_and_counts_missing_images(trained):
    out, r = trained
    for name in ["config.json", "model.safetensors", "tokenizer.json", "README.md", "metrics.jsonl"]:
        assert (out / name).is_file()
    assert "skipped 1 image(s) named in the captions but missing" in r.stderr
    assert "python -m train.caption --images" in (out / "README.md").read_text()


def test_evaluate_prints_bleu_cider_and_caption_variety_as_its_last_line(trained, dataset):
    out, _ = trained
    r = caption_cli("evaluate", "--checkpoint", out, "--images", dataset / "images", "--captions",
                    dataset / "captions.txt", "--image-list", dataset / "dev.txt", "--beam", "2", "--show", "6")
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"bleu1", "bleu2", "bleu3", "bleu4", "cider", "n", "unique_captions", "vocabulary"} <= set(result)
    shown = [line.split(": ", 1)[1] if ": " in line else "" for line in r.stderr.splitlines()
             if line.endswith(".jpg:") or ".jpg: " in line]
    assert result["n"] == len(shown) == 6
    assert result["unique_captions"] == len(set(shown))  # variety: distinct captions and distinct words used
    assert result["vocabulary"] == len({w for c in shown for w in c.split()})
    old = caption_cli("evaluate", "--checkpoint", out, "--images", dataset / "images", "--captions",
                      dataset / "captions.txt", "--split", dataset / "dev.txt", "--beam", "2")  # the old spelling
    assert old.returncode == 0 and "--split FILE is deprecated" in old.stderr
    assert json.loads(old.stdout.strip().splitlines()[-1])["bleu4"] == result["bleu4"]


def test_caption_cli_captions_images_and_names_bad_files(trained, dataset, tmp_path):
    out, _ = trained
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    r = caption_cli("caption", "--checkpoint", out, dataset / "images" / "red_square_0.jpg", bad)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "not an image" in r.stderr
    assert r.stdout.count("\t") == 1


def test_training_reads_a_local_imagefolder_dataset(dataset, tmp_path):
    pytest.importorskip("datasets")
    folder = tmp_path / "hf"
    folder.mkdir()
    rows = []
    for p in sorted((dataset / "images").iterdir())[:10]:
        (folder / p.name).write_bytes(p.read_bytes())
        rows.append(json.dumps({"file_name": p.name, "text": p.stem.replace("_", " ")}))
    (folder / "metadata.jsonl").write_text("\n".join(rows))
    r = caption_cli("--hf-dataset", folder, "--out", tmp_path / "run", "--steps", "4", "--eval-interval", "2",
                    *TINY_CAPTION_FLAGS)
    assert r.returncode == 0, r.stderr[-3000:]
    _, tok, config = load_model(tmp_path / "run")
    assert config["model_type"] == "captioner"
    assert config["metrics"]["data"] == {"train": 9, "val": 1}  # 10 images, 10% held out to validate
    assert UNK_ID not in tok.encode("blue green circle square").ids  # the vocabulary came from metadata.jsonl
    assert f"Hugging Face dataset `{folder}`" in (tmp_path / "run" / "README.md").read_text()


@pytest.fixture
def models(trained):
    model, tok, _ = load_model(trained[0])
    return {"tiny": ImageCaptioner(model, tok)}


def _photo_of(figure) -> Image.Image:
    """The photo a caption's attention figure carries (its first trace, a JPEG data URI)."""
    source = figure.data[0].source
    assert source.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))


def test_tab_handler_returns_a_caption_an_n_best_list_and_each_words_attention_over_the_photo(models, dataset, tmp_path):
    wide = tmp_path / "wide.png"  # a 2:1 photo: the attention is drawn on it as given (the model saw it squashed)
    Image.open(dataset / "images" / "blue_circle_1.jpg").resize((96, 48)).save(wide)
    caption, rows, figure, notes = tab.caption_image(str(wide), 3, "tiny", models=models)
    assert isinstance(caption, str) and rows[0][1] == caption and len(rows) == 3
    assert _photo_of(figure).size == (96, 48)
    maps = figure.data[1:]  # one heat map per word, one shown, the slider picks the others
    words = [m.name for m in maps]
    assert " ".join(w for w in words if w != "&lt;/s&gt;") == caption and len(figure.layout.sliders[0].steps) == len(words)
    start = figure.layout.sliders[0].active  # the first content word's map is the one shown
    assert [m.visible for m in maps] == [i == start for i in range(len(maps))]
    h, w = models["tiny"].grid
    for m in maps:  # each word's weights over the grid, as the model gave them: a distribution over the regions
        assert np.asarray(m.customdata).shape == (h, w) and np.asarray(m.customdata).sum() == pytest.approx(1, abs=1e-4)
        assert m.x0 + m.dx * (w - 0.5) == pytest.approx(96) and m.y0 + m.dy * (h - 0.5) == pytest.approx(48)
    big = tmp_path / "big.png"  # a large photo travels at the figure's size, with its aspect ratio
    Image.new("RGB", (1200, 800), "green").save(big)
    _, _, figure, _ = tab.caption_image(str(big), 1, "tiny", models=models)
    assert _photo_of(figure).size == (tab.SHOWN_SIDE, tab.SHOWN_SIDE * 2 // 3)
    assert "ms" in notes and f"attention grid {h} x {w}" in notes



def test_a_cropping_models_map_is_drawn_on_the_centre_square_it_read_and_the_tab_says_so(trained, dataset, tmp_path):
    model, tok, _ = load_model(trained[0])
    model.config.fit = "crop"  # as the from-scratch captioner reads photos
    wide = tmp_path / "wide.png"
    Image.open(dataset / "images" / "blue_circle_1.jpg").resize((96, 48)).save(wide)
    _, _, figure, notes = tab.caption_image(str(wide), 1, "tiny", models={"tiny": ImageCaptioner(model, tok)})
    assert _photo_of(figure).size == (48, 48) and "reads only the centre square" in notes
    square = tmp_path / "square.png"
    Image.open(dataset / "images" / "blue_circle_1.jpg").resize((48, 48)).save(square)
    _, _, _, notes = tab.caption_image(str(square), 1, "tiny", models={"tiny": ImageCaptioner(model, tok)})
    assert "centre square" not in notes  # a square photo is read whole

@pytest.mark.parametrize("make, message", [
    (lambda t: None, "Upload an image"),
    (lambda t: _write(t / "x.jpg", b"GIF89a broken"), "cannot be used"),
    (lambda t: _write(t / "y.png", b"hello"), "not an image"),
])
def test_tab_bad_images_get_a_clear_message(models, tmp_path, make, message):
    with pytest.raises(gr.Error, match=message):
        tab.caption_image(make(tmp_path), 3, "tiny", models=models)


def _write(path, data):
    path.write_bytes(data)
    return str(path)


def test_the_attention_slider_starts_on_the_first_word_that_names_something():
    assert tab.first_content_word(["a", "group", "of", "children", "are", "playing", "</s>"]) == 3
    assert tab.first_content_word(["two", "dogs", "run"]) == 1
    assert tab.first_content_word(["a", "the", "</s>"]) == 0  # nothing but function words: the first


def test_a_file_that_is_not_an_image_reaches_the_handler_which_explains(models, tmp_path):
    # raised while Gradio read the upload, the message bypassed wire: an "Error" badge on every output, a toast
    fake = _write(tmp_path / "fake.jpg", b"this is text, not a JPEG")
    read = tab.UploadedImage(type="filepath").preprocess(ImageData(path=fake, orig_name="fake.jpg"))
    assert read is tab.UNREADABLE
    with pytest.raises(gr.Error, match="cannot be read as an image"):
        tab.caption_image(read, 3, "tiny", models=models)


def test_an_example_that_shows_a_limit_says_so_in_its_notes(models, dataset, tmp_path):
    limit = next(path for path, _, right in tab.EXAMPLES if right is None)
    photo = tmp_path / limit.name  # Gradio passes an example as a copy with the same name
    Image.open(dataset / "images" / "blue_circle_1.jpg").save(photo)
    *_, notes = tab.caption_image(str(photo), 2, "tiny", models=models)
    assert f"Note: this example shows {tab.LIMITS[limit.name]}" in notes and "a limit:" in notes
    *_, notes = tab.caption_image(str(dataset / "images" / "blue_circle_1.jpg"), 2, "tiny", models=models)
    assert "this example shows" not in notes
    half_right = next(path for path, label, right in tab.EXAMPLES if right and ": " in label)  # the dog on a porch
    Image.open(dataset / "images" / "blue_circle_1.jpg").save(photo := tmp_path / half_right.name)
    *_, notes = tab.caption_image(str(photo), 2, "tiny", models=models)
    assert "Note: this example shows a dog on a porch: it sees the dog, and invents what it does" in notes


def test_a_caption_less_sure_than_the_checkpoints_calibrated_threshold_gets_a_note(models, dataset):
    photo = str(dataset / "images" / "blue_circle_1.jpg")
    captioner = models["tiny"]
    best = captioner.caption_photos([photo], beam_size=2)[0]
    assert best.confidence == pytest.approx(best.candidates[0].score / len(best.words)) and best.confidence < 0
    captioner.unsure_below = best.confidence + 0.01  # just above this caption's: it is the less sure
    *_, notes = tab.caption_image(photo, 2, "tiny", models=models)
    assert f"less sure of this caption (log-probability {best.confidence:.2f} a word) than of 19 in 20" in notes
    for threshold in (best.confidence - 0.01, None):  # surer than the threshold, or a checkpoint never calibrated
        captioner.unsure_below = threshold
        *_, notes = tab.caption_image(photo, 2, "tiny", models=models)
        assert "less sure" not in notes


def test_evaluate_calibrates_the_unsure_threshold_on_dev_into_config_json_and_refuses_the_test_split(trained, dataset,
                                                                                                      tmp_path):
    out, _ = trained
    folder = tmp_path / "caption-flickr8k"  # where the tab looks for its default captioner
    shutil.copytree(out, folder)
    r = caption_cli("evaluate", "--checkpoint", folder, "--images", dataset / "images", "--captions",
                    dataset / "captions.txt", "--image-list", dataset / "dev.txt", "--beam", "2", "--calibrate-unsure")
    assert r.returncode == 0, r.stderr[-2000:]
    p5 = json.loads(r.stdout.strip().splitlines()[-1])["confidence_p5"]
    assert p5 < 0 and load_model(folder)[2]["metrics"]["unsure_below"] == p5
    assert f"unsure below {p5} nats per token" in (folder / "README.md").read_text()
    loaded, _ = tab.load_models(tmp_path)
    assert [m.unsure_below for m in loaded.values()] == [p5]  # the tab takes it from there
    r = caption_cli("evaluate", "--checkpoint", folder, "--flickr8k", dataset, "--split", "test", "--calibrate-unsure")
    assert r.returncode != 0 and "run it on --split dev" in r.stderr and "Traceback" not in r.stderr


def test_training_skips_padding_yet_gives_the_logits_of_a_full_pass_at_every_real_word():
    model = make_captioner(seed=4)
    tokens_in = torch.tensor([[BOS_ID, 5, 0, 0, 0], [BOS_ID, 6, 7, 8, 9], [BOS_ID, 0, 0, 0, 0]])
    tokens_out = torch.tensor([[5, EOS_ID, 0, 0, 0], [6, 7, 8, 9, EOS_ID], [EOS_ID, 0, 0, 0, 0]])
    packed = model(IMAGES, tokens_in, tokens_out)
    ctx, state = model.begin(IMAGES)
    full, _, full_attn = model.decode(tokens_in, state, ctx)  # every position computed
    real = tokens_out != 0
    torch.testing.assert_close(packed.logits[real], full[real])
    torch.testing.assert_close(packed.attention[real], full_attn[real])
    assert packed.attention[~real].abs().sum() == 0  # padding never looks


def test_an_int8_captioner_captions_like_the_float_one_and_leaves_it_unchanged():
    model = make_captioner(seed=5, vocab=WordTokenizer.train(["a red square", "a blue circle", "two green shapes"], min_count=1).vocab_size)
    tok = WordTokenizer.train(["a red square", "a blue circle", "two green shapes"], min_count=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    float_captions = ImageCaptioner(model, tok).caption_batch(IMAGES, beam_size=2, max_words=6)
    int8 = ImageCaptioner(model, tok, quantize=True)
    assert int8.model is not model and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    int8_captions = int8.caption_batch(IMAGES, beam_size=2, max_words=6)
    assert [len(c.candidates) for c in int8_captions] == [2, 2, 2]
    # the same search over nearly the same scores: the same captions, with log-probabilities close to the float ones
    assert [c.text for c in int8_captions] == [c.text for c in float_captions]
    for a, b in zip(float_captions, int8_captions):
        assert abs(a.candidates[0].score - b.candidates[0].score) < 0.1


def test_resume_with_another_model_option_is_refused_and_names_it(dataset, tmp_path):
    """--resume goes on with the run's own model: a model option given with another value than the run's is refused
    (it used to be dropped without a word, its default being indistinguishable from a choice); the same value is not."""
    data = ["--images", dataset / "images", "--captions", dataset / "captions.txt", "--train-list",
            dataset / "train.txt", "--val-list", dataset / "dev.txt", "--out", tmp_path / "run", "--keep-resume",
            "--eval-interval", "2"]
    first = caption_cli(*data, "--steps", "2", *TINY_CAPTION_FLAGS)
    assert first.returncode == 0, first.stderr[-3000:]
    before = (tmp_path / "run" / "resume.pt").stat().st_mtime
    r = caption_cli(*data, "--steps", "4", "--resume", "--hidden-size", "32", "--fine-tune-encoder")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "--hidden-size 32 (the run's: 16)" in r.stderr and "--resume continues it as it was built" in r.stderr
    assert "--fine-tune-encoder" not in r.stderr  # a from-scratch CNN always trains: that is the run's own setting
    assert (tmp_path / "run" / "resume.pt").stat().st_mtime == before
    again = caption_cli(*data, "--steps", "4", "--resume", *TINY_CAPTION_FLAGS)  # its own options, given again
    assert again.returncode == 0 and "resumed from" in again.stderr, again.stderr[-3000:]


def test_each_evaluation_reports_greedy_bleu_and_cider_on_the_first_validation_images(trained, dataset):
    out, _ = trained
    evals = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["split"] == "val"]
    dev = (dataset / "dev.txt").read_text().split()
    assert [r["step"] for r in evals] == [0, 6, 12]
    for r in evals:  # --val-bleu-images 3 in TINY_CAPTION_FLAGS
        assert r["val_bleu_n"] == min(3, len(dev)) and r["val_bleu4"] >= 0.0 and r["val_cider"] >= 0.0
