"""The translation model and search: masks, the shared decoder step, beam search invariants, tokenizers."""
import math

import pytest
import torch

from conftest import TINY_PAIRS
from seqmodels import Seq2Seq, Seq2SeqConfig, SentencePieceTokenizer, WordTokenizer, load_model, save_model
from seqmodels.data import pad_batch
from seqmodels.decoding import beam_search, coverage_gap, discourage_repeats, greedy_search, search
from seqmodels.decoding import searchable_log_probs
from seqmodels.tokenizers import BOS_ID, EOS_ID, PAD_ID, TokenizerPair, normalize

LAYOUTS = {
    "luong-general": dict(attention="general"),
    "luong-dot": dict(attention="dot"),
    "bahdanau-tutorial": dict(attention="additive", context_feeding=True, readout_context=False, tie_embeddings=False,
                              bidirectional=False, encoder_layers=1),
    "lstm-additive": dict(cell="lstm", attention="additive", decoder_layers=2),
}


def make_s2s(seed=0, vocab=40, **kw) -> Seq2Seq:
    torch.manual_seed(seed)
    args = dict(src_vocab_size=vocab, tgt_vocab_size=vocab, embedding_dim=16, hidden_size=16, encoder_layers=2,
                decoder_layers=1, dropout=0.0, label_smoothing=0.0)
    args.update(kw)
    return Seq2Seq(Seq2SeqConfig(**args)).eval()


SOURCES = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15, 16, 17, 18, 19], [20]]


@pytest.fixture(scope="module")
def sp_tokenizer():
    return SentencePieceTokenizer.train([s for p in TINY_PAIRS for s in p], vocab_size=300)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_training_decode_over_the_whole_target_equals_stepping_one_token_at_a_time(layout):
    model = make_s2s(**LAYOUTS[layout])
    ctx, state = model.begin(SOURCES[:2])
    tgt = torch.tensor([[BOS_ID, 7, 8, 9, 10], [BOS_ID, 11, 12, 13, 14]])
    full, _, full_attn = model.decode(tgt, state, ctx)
    steps, attns = [], []
    for t in range(tgt.size(1)):
        logp, state, attn = model.step_log_probs(tgt[:, t], state, ctx)
        steps.append(logp), attns.append(attn)
    torch.testing.assert_close(torch.stack(steps, 1), searchable_log_probs(full.flatten(0, 1)).view_as(full),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack(attns, 1), full_attn, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_padding_a_sentence_into_a_batch_does_not_change_its_translation(layout):
    model = make_s2s(**LAYOUTS[layout])
    alone = [beam_search(model, [s], beam_size=3, max_len=12)[0] for s in SOURCES]
    together = beam_search(model, SOURCES, beam_size=3, max_len=12)
    for a, b in zip(alone, together):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)


def test_attention_never_looks_at_padding_and_sums_to_one():
    model = make_s2s(attention="additive")
    ctx, state = model.begin(SOURCES)
    _, _, attn = model.decode(torch.full((4, 3), BOS_ID), state, ctx)  # (B, T, S)
    torch.testing.assert_close(attn.sum(-1), torch.ones(4, 3))
    for b, s in enumerate(SOURCES):
        assert (attn[b, :, len(s):] == 0).all()


def test_the_loss_ignores_padded_target_positions():
    model = make_s2s()
    src, src_len = pad_batch(SOURCES[:2])
    tgt_in, tgt_out = torch.tensor([[BOS_ID, 7, 8]]).repeat(2, 1), torch.tensor([[7, 8, EOS_ID]]).repeat(2, 1)
    loss = model(src, src_len, tgt_in, tgt_out).loss
    pad = torch.full((2, 4), PAD_ID)
    padded = model(src, src_len, torch.cat([tgt_in, pad], 1), torch.cat([tgt_out, pad], 1)).loss
    torch.testing.assert_close(loss, padded)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_beam_size_one_matches_greedy(layout):
    model = make_s2s(seed=3, **LAYOUTS[layout])
    greedy = greedy_search(model, SOURCES, max_len=15)
    beam = beam_search(model, SOURCES, beam_size=1, max_len=15)
    assert [g.tokens for g in greedy] == [b[0].tokens for b in beam]
    assert [g.score for g in greedy] == pytest.approx([b[0].score for b in beam], abs=1e-4)


@torch.no_grad()
def _teacher_forced_score(model, source, tokens, finished):
    ctx, state = model.begin([source])
    tgt = torch.tensor([[BOS_ID] + tokens])
    logp = searchable_log_probs(model.decode(tgt, state, ctx)[0][0])  # (T+1, V)
    targets = tokens + [EOS_ID] if finished else tokens
    return sum(float(logp[i, t]) for i, t in enumerate(targets))


def test_beam_scores_are_the_log_probabilities_of_their_outputs_and_come_best_first():
    model = make_s2s(seed=1)
    for source, hyps in zip(SOURCES, beam_search(model, SOURCES, beam_size=4, max_len=10, alpha=0.6)):
        assert len(hyps) == 4
        assert [h.normalized for h in hyps] == sorted((h.normalized for h in hyps), reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 4  # n distinct candidates
        for h in hyps:
            assert h.score == pytest.approx(_teacher_forced_score(model, source, h.tokens, h.finished), abs=1e-3)
            assert h.attention.shape[0] == len(h.tokens) + h.finished
            torch.testing.assert_close(h.attention.sum(-1), torch.ones(h.attention.shape[0]))


def test_search_never_outputs_padding_or_the_start_token():
    model = make_s2s(seed=5)
    with torch.no_grad():  # a model that would rather say <pad> and <s> than anything else
        model.out.bias[PAD_ID] = 50.0
        model.out.bias[BOS_ID] = 50.0
    for hyps in beam_search(model, SOURCES, beam_size=3, max_len=6):
        assert all(PAD_ID not in h.tokens and BOS_ID not in h.tokens for h in hyps)
    assert all(PAD_ID not in h.tokens for h in greedy_search(model, SOURCES, max_len=6))


def test_beam_search_returns_hypotheses_that_never_end_at_the_length_limit():
    model = make_s2s(seed=2)
    with torch.no_grad():  # a model that can never say </s>
        model.out.bias[EOS_ID] = -1e4
    hyps = beam_search(model, [SOURCES[0]], beam_size=3, max_len=6)[0]
    assert len(hyps) == 3 and all(not h.finished and len(h.tokens) == 6 for h in hyps)


def test_beam_search_is_no_worse_than_greedy_in_model_score():
    model = make_s2s(seed=4)
    greedy = greedy_search(model, SOURCES, max_len=12)
    beams = beam_search(model, SOURCES, beam_size=5, max_len=12, alpha=0.0)  # raw log-probabilities
    for g, b in zip(greedy, beams):
        if g.finished:
            assert b[0].score >= g.score - 1e-4


def test_discourage_repeats_bans_the_tokens_that_would_repeat_an_ngram_and_charges_each_earlier_use():
    history = torch.tensor([[5, 6, 7, 5], [5, 5, 6, 9]])
    banned = discourage_repeats(torch.zeros(2, 12), history, no_repeat_ngram=2)
    # row 0 ends in 5 and has said "5 6": 6 is banned; row 1 ends in 9, said once: nothing is
    assert torch.isinf(banned[0]).nonzero().flatten().tolist() == [6] and torch.isfinite(banned[1]).all()
    said = torch.tensor([[1, 2, 3, 1, 2], [1, 2, 3, 2, 1]])
    trigram = discourage_repeats(torch.zeros(2, 12), said, no_repeat_ngram=3)
    assert torch.isinf(trigram[0]).nonzero().flatten().tolist() == [3] and torch.isfinite(trigram[1]).all()
    charged = discourage_repeats(torch.zeros(2, 12), history, repeat_penalty=0.5)
    assert charged[1, 5] == -1.0 and charged[1, 6] == -0.5 and charged[1, 9] == -0.5 and charged[1, 4] == 0.0


def test_coverage_gap_counts_each_source_position_read_less_than_once_and_ignores_padding():
    attention = torch.tensor([[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]],  # both real positions read once; the third is padding
                              [[1.0, 0.0, 0.0], [0.9, 0.1, 0.0]]])  # the second read a tenth, the third never
    gap = coverage_gap(attention, torch.tensor([[True, True, False], [True, True, True]]))
    assert gap[0] == 0.0 and gap[1] == pytest.approx(math.log(0.1) + math.log(1e-3))


def test_a_coverage_penalty_keeps_beam_search_from_ending_before_the_source_is_read_and_leaves_greedy_alone():
    model = make_s2s(seed=6)
    with torch.no_grad():  # a model that would end at once, after one word at most
        model.out.bias[EOS_ID] = 6.0
    source = [SOURCES[2]]  # 8 tokens
    hasty = search(model, source, beam_size=3, max_len=30)[0][0]
    patient = search(model, source, beam_size=3, max_len=30, coverage=1.0)[0][0]
    greedy = search(model, source, beam_size=1, max_len=30, coverage=1.0)[0][0]
    assert greedy.tokens == search(model, source, beam_size=1, max_len=30)[0][0].tokens
    assert hasty.finished and len(hasty.tokens) <= 1
    assert patient.finished and len(patient.tokens) >= len(source[0]) // 2
    assert coverage_gap(patient.attention[None]) > coverage_gap(hasty.attention[None]) + 5


def _repeats_a_pair(tokens):
    pairs = list(zip(tokens, tokens[1:]))
    return len(pairs) != len(set(pairs))


@pytest.mark.parametrize("beam", [1, 3])
def test_search_with_no_repeat_ngram_never_says_a_word_pair_twice(beam):
    model = make_s2s(seed=3)
    with torch.no_grad():  # a model that loves two words and never stops: it would say them over and over
        model.out.bias[EOS_ID] = -1e4
        model.out.bias[7], model.out.bias[8] = 8.0, 7.5
    free = search(model, SOURCES, beam_size=beam, max_len=10)
    assert all(_repeats_a_pair(hyps[0].tokens) for hyps in free)
    for hyps in search(model, SOURCES, beam_size=beam, max_len=10, no_repeat_ngram=2):
        assert all(len(h.tokens) == 10 and not _repeats_a_pair(h.tokens) for h in hyps)


def test_sentencepiece_round_trips_text_with_unseen_characters_through_byte_fallback(sp_tokenizer):
    for text in ["You are late.", "We are ready 😀 — ça va ?", "Привет, 世界", "ﬁne   ＡＢＣ"]:
        enc = sp_tokenizer.encode(text)
        assert PAD_ID not in enc.ids and 1 not in enc.ids  # no <unk>: bytes instead
        assert sp_tokenizer.decode(enc.ids) == normalize(text)
    assert "😀" in sp_tokenizer.encode("ok 😀").unknown
    assert sp_tokenizer.encode("We are ready.").unknown == []


def test_word_tokenizer_round_trips_known_words_and_reports_unknown_ones():
    tok = WordTokenizer.train([fr for _, fr in TINY_PAIRS], min_count=1)
    text = "Nous sommes prêt, je suis en retard !"
    tok2 = WordTokenizer.train([text], min_count=1)
    assert tok2.decode(tok2.encode(text).ids) == text
    enc = tok.encode("Je suis zzz.")
    assert enc.unknown == ["zzz"] and tok.decode(enc.ids) == "Je suis <unk>."


@pytest.mark.parametrize("kind", ["sentencepiece", "word-pair"])
def test_checkpoint_round_trip_restores_identical_logits_and_tokenizers(tmp_path, sp_tokenizer, kind):
    if kind == "sentencepiece":
        tok = sp_tokenizer
        model = make_s2s(vocab=tok.vocab_size)
        src_tok = tgt_tok = tok
    else:
        src_tok = WordTokenizer.train([en for en, _ in TINY_PAIRS], min_count=1)
        tgt_tok = WordTokenizer.train([fr for _, fr in TINY_PAIRS], min_count=1)
        tok = TokenizerPair(src_tok, tgt_tok)
        model = make_s2s(src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size, shared_vocab=False,
                         tie_embeddings=False, readout_context=False)
    save_model(tmp_path, model, tok)
    again, tok2, config = load_model(tmp_path)
    assert config["model_type"] == "seq2seq"
    src = [src_tok.encode("We are happy.").ids]
    a, b = beam_search(model, src, beam_size=3, max_len=8), beam_search(again, src, beam_size=3, max_len=8)
    assert [h.tokens for h in a[0]] == [h.tokens for h in b[0]]
    assert a[0][0].score == pytest.approx(b[0][0].score, abs=1e-5)
    assert tok2.to_dict() == tok.to_dict()


def test_tied_output_layer_is_stored_once_and_retied_on_load(tmp_path, sp_tokenizer):
    from safetensors.torch import load_file
    model = make_s2s(vocab=sp_tokenizer.vocab_size)
    save_model(tmp_path, model, sp_tokenizer)
    stored = load_file(str(tmp_path / "model.safetensors"))
    assert "out.weight" not in stored and "tgt_embed.weight" in stored
    again, _, _ = load_model(tmp_path)
    assert again.out.weight is again.tgt_embed.weight
