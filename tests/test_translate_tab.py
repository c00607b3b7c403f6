"""The Translation tab's handler, called as Gradio calls it."""
import gradio as gr
import pytest
from matplotlib.figure import Figure

from conftest import TINY_PAIRS
from demos import translate as tab
from seqmodels import Seq2Seq, Seq2SeqConfig, SentencePieceTokenizer, Translator
from seqmodels.translator import MAX_SOURCE_CHARS


@pytest.fixture(scope="module")
def models():
    import torch
    tok = SentencePieceTokenizer.train([s for p in TINY_PAIRS for s in p], vocab_size=300)
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=tok.vocab_size, tgt_vocab_size=tok.vocab_size, embedding_dim=16,
                                  hidden_size=16, encoder_layers=1, dropout=0.0))
    return {"tiny": tab.TranslationModel("tiny", None, Translator(model, tok), {})}


def test_handler_returns_text_an_n_best_list_and_an_attention_figure(models):
    french, rows, fig, notes = tab.translate("We are ready.", 4, "tiny", models=models)
    assert isinstance(french, str) and isinstance(fig, Figure)
    assert len(rows) == 4 and [r[0] for r in rows] == [1, 2, 3, 4] and rows[0][1] == french
    assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)
    assert "beam 4" in notes and " ms" in notes


def test_the_attention_map_has_one_row_per_output_subword_and_one_column_per_source_subword(models):
    result = models["tiny"].translator.translate(["You are late."], beam_size=3)[0]
    assert result.attention.shape == (len(result.target_pieces), len(result.source_pieces))
    fig = tab.attention_figure(result.source_pieces, result.target_pieces, result.attention)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == result.source_pieces


@pytest.mark.parametrize("text, message", [
    ("", "Type an English sentence"),
    ("   \n ", "Type an English sentence"),
    ("?!... ---", "no letters or digits"),
    (None, "Type an English sentence"),
])
def test_bad_input_gets_a_clear_message(models, text, message):
    with pytest.raises(gr.Error, match=message):
        tab.translate(text, 5, "tiny", models=models)


def test_long_input_is_cut_at_the_stated_limit_and_said(models):
    text = "We are ready to go. " * 60
    french, _, _, notes = tab.translate(text, 2, "tiny", models=models)
    assert f"the limit is {MAX_SOURCE_CHARS}" in notes


def test_unseen_scripts_and_emoji_are_translated_and_named_and_nfkc_applies(models):
    _, _, _, notes = tab.translate("We are ready 😀 Ж", 2, "tiny", models=models)
    assert "😀" in notes and "Ж" in notes
    result = models["tiny"].translator.translate(["Ｗｅ are ready."], beam_size=2)[0]
    assert result.source == "We are ready."  # full-width letters folded by NFKC


@pytest.mark.parametrize("beam", [0, 11, float("nan"), "x"])
def test_beam_size_out_of_range_is_refused(models, beam):
    with pytest.raises(gr.Error, match="beam size"):
        tab.translate("We are ready.", beam, "tiny", models=models)


def test_unknown_model_and_no_model_are_clear_errors(models):
    with pytest.raises(gr.Error, match="unknown model"):
        tab.translate("Hi.", 5, "nope", models=models)
    with pytest.raises(gr.Error, match="no translation model"):
        tab.translate("Hi.", 5, None, models={})


def test_an_int8_translator_quantises_a_copy_and_leaves_the_float_model_alone(models):
    import torch
    from torch.ao.nn.quantized import dynamic
    float_model = models["tiny"].translator.model
    before = {k: v.clone() for k, v in float_model.state_dict().items()}
    int8 = Translator(float_model, models["tiny"].translator.source_tok, quantize=True)
    assert isinstance(int8.model.out, dynamic.Linear) and isinstance(int8.model.decoder, dynamic.GRU)
    assert isinstance(float_model.out, torch.nn.Linear) and not isinstance(float_model.out, dynamic.Linear)
    assert all(torch.equal(before[k], v) for k, v in float_model.state_dict().items())
    result = int8.translate(["We are ready."], beam_size=3)[0]
    torch.testing.assert_close(result.attention.sum(-1), torch.ones(len(result.target_pieces)))


def test_a_translation_is_one_line_even_when_byte_pieces_spell_control_characters(models):
    import torch
    from seqmodels.translator import _clean
    assert _clean("a\nb\r\n c\x00d\t e") == "a b c d e"
    tr = models["tiny"].translator
    newline = tr.target_tok.sp.piece_to_id("<0x0A>")
    original = tr.model.out.bias[newline].item()
    with torch.no_grad():  # make the model love the byte piece for "\n"
        tr.model.out.bias[newline] = 30.0
    try:
        result = tr.translate(["We are ready."], beam_size=2)[0]
        assert "\n" not in result.text and all("\n" not in c.text for c in result.candidates)
    finally:
        with torch.no_grad():
            tr.model.out.bias[newline] = original
