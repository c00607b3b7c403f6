"""The Train tab: a live run streams curves and samples, stops on request, and leaves a model that writes,
opens up and downloads as a checkpoint the CLI loads; its settings round-trip through the page URL."""
from __future__ import annotations

import io
import re
import sys
import threading
import time
import zipfile
from types import SimpleNamespace

import gradio as gr
import pytest

from demos import corpora
from demos.corpora import load_corpus
from demos import train as tab
from demos import train_form as form
from seqmodels.live import MAX_PARAMETERS, LiveError, LiveSettings

from conftest import TINY_TEXT, run_command

TEXT = TINY_TEXT * 3  # ~20,000 characters: enough for sequences of 32 in both splits
TINY = dict(cell="lstm", layers=1, hidden=32, seq_len=32, lr=3e-3)


def start(seconds=5, session=None, text=TEXT, **settings):
    s = {**TINY, **settings}
    return tab.run_training(tab.OWN_TEXT, text, None, s["cell"], s["layers"], s["hidden"], s["seq_len"], s["lr"],
                            seconds, session)


def test_a_live_run_streams_growing_curves_and_samples_then_leaves_a_model_that_a_refused_run_names():
    outputs = list(start(seconds=6))
    assert len(outputs) >= 3  # the page got updates while it trained, not only at the end
    plot, status, samples, session, download, query, views_text = outputs[-1]
    try:
        validation = plot[plot.curve == "validation"]
        assert len(validation) >= 2 and validation.loss.iloc[-1] < validation.loss.iloc[0] and not plot.loss.isna().any()
        assert len(plot[plot.curve == "training batch"]) >= 2
        assert samples.count('<pre class="generated">') >= 2  # a sample at every evaluation
        assert "finished after" in status and session.model is not None
        assert download["visible"] and download["value"].endswith(".zip")
        assert "corpus=" in query and "pasted" not in query
        assert views_text and views_text in TEXT  # the views read a piece of the model's own text
        assert status.endswith("s, on your text")  # what it learned, since the panel may outlive the corpus menu
        # a refused next run leaves this model's curves and samples on the page: the message says whose they are
        with pytest.raises(gr.Error, match="needs at least .*still your last model's, trained on your text"):
            next(start(text="abc" * 50, session=session))
    finally:
        session.close()
    with pytest.raises(gr.Error, match="needs at least") as refused:  # no model before: nothing to say about one
        next(start(text="abc" * 50))
    assert "last model" not in str(refused.value)


def test_stop_ends_the_run_within_seconds_and_the_model_still_writes_and_opens_up():
    runs = start(seconds=120)
    session, t0 = None, time.time()
    for plot, status, samples, session, download, query, _ in runs:
        if (plot.curve == "training batch").sum() >= 1 and session.run is not None:
            break
    assert "Stopping" in tab.stop_training(session)[0]
    stopped_at = time.time()
    *_, last = runs
    try:
        assert time.time() - stopped_at < 10 and time.time() - t0 < 60
        assert "stopped after" in last[1]
        written = list(tab.generate_own("ANNA:\n", 0.8, 0, 1.0, 60, 7, session))
        assert len(written[-1][1]) >= 60
        heat, unit_html, caption, gate_fig, gate_summary = tab.inside_own("ANNA:\nThe cat is grey.", session)
        assert "forget" in gate_summary and heat is not None
    finally:
        session.close()


def test_the_samples_keep_the_first_the_newest_and_evenly_spread_ones_between_newest_first():
    records = [{"split": "val", "step": 500 * i, "elapsed_s": 2.0 * i, "val_loss": 4 - i / 10, "sample": f"text {i}"}
               for i in range(13)]
    shown = re.findall(r"<b>step ([\d,]+),", tab.samples_html(records))
    assert shown == ["6,000", "4,500", "3,000", "1,500", "0"]  # 1,500 and 3,000: the middle of the way is kept
    assert len(re.findall("<b>step", tab.samples_html(records[:3]))) == 3


def test_the_downloaded_zip_loads_with_the_command_line_sampler(tmp_path):
    *_, last = start(seconds=5)
    session = last[3]
    try:
        with zipfile.ZipFile(last[4]["value"]) as z:
            assert "input.txt" not in z.namelist() and "README.md" in z.namelist()  # the checkpoint, not the text
            z.extractall(tmp_path / "model")
    finally:
        session.close()
    r = run_command([sys.executable, "-m", "train.charlm", "sample", "--checkpoint", str(tmp_path / "model"),
                     "--prompt", "ANNA", "--max-new-tokens", "30"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ANNA") and len(r.stdout) > 30


def test_the_url_query_round_trips_the_settings():
    settings = LiveSettings(cell="mingru", layers=2, hidden_size=128, seq_len=96, learning_rate=0.005, seconds=45)
    query = form.settings_query("Python code", settings)
    corpus, *values, address, tabs = form.fill_from_query(SimpleNamespace(query_params=query))
    assert [corpus["value"], *values] == ["Python code", "mingru", 2, 128, 96, 0.005, 45]
    assert tabs.selected == "train"  # a shared link opens the Train tab
    assert address == gr.skip()  # a good link's address is left as the visitor opened it


def test_a_pasted_text_never_goes_into_the_url_and_bad_query_values_are_mended_with_a_notice(monkeypatch):
    assert "secret" not in form.settings_query("my secret text", LiveSettings())
    notices = []
    monkeypatch.setattr(form.gr, "Warning", notices.append)
    query = "corpus=Bogus&cell=mamba&layers=99&hidden=abc&seq_len=nan&lr=0.005&seconds=30"
    corpus, *values, address, _ = form.fill_from_query(SimpleNamespace(query_params=query))
    d = LiveSettings()
    assert [corpus["value"], *values] == [form.default_corpus(), d.cell, 3, d.hidden_size, d.seq_len, 0.005, 30]  # 99 layers: the most, 3
    # the address becomes the mended setup: copied as it was, it would pass the bad values on
    assert address == form.settings_query(form.default_corpus(), LiveSettings(layers=3, learning_rate=0.005, seconds=30))
    [notice] = notices
    for said in ["corpus 'Bogus' is not one of", "cell 'mamba' is not one of", "so lstm",
                 "layers 99 is outside 1 to 3, so 3", "hidden 'abc' is not a number", "seq_len 'nan' is not a number"]:
        assert said in notice
    form.fill_from_query(SimpleNamespace(query_params="cell=gru&layers=2"))
    assert len(notices) == 1  # a good link opens without a notice


@pytest.mark.parametrize("bad, message", [
    (dict(hidden_size=4096), "hidden size must be between"),
    (dict(seconds=10_000), "seconds must be between"),
    (dict(learning_rate=float("nan")), "learning rate must be between"),
    (dict(layers=1.5), "layers must be a whole number"),
    (dict(cell="mamba"), "unknown cell"),
])
def test_settings_outside_their_ranges_are_refused_with_a_message(bad, message):
    with pytest.raises(LiveError, match=message):
        LiveSettings(**bad)


def test_a_model_over_the_parameter_cap_is_refused_before_any_process_starts():
    with pytest.raises(LiveError, match=f"{MAX_PARAMETERS:,}"):
        LiveSettings(cell="lstm", layers=3, hidden_size=512).build(65)
    with pytest.raises(gr.Error, match="parameters"):
        next(start(cell="lstm", layers=3, hidden=512))


@pytest.mark.parametrize("text, message", [("", "empty"), ("   \n", "empty"), ("abc" * 50, "needs at least"),
                                           ("a\x00b" * 1000, "binary")])
def test_unusable_texts_get_a_message(text, message):
    with pytest.raises(gr.Error, match=message):
        next(start(text=text))


def test_a_text_too_short_suggests_shorter_sequences_only_while_there_are_shorter_ones():
    with pytest.raises(gr.Error, match="shorter sequence length"):
        next(start(text="abcde", seq_len=32))
    with pytest.raises(gr.Error, match="needs at least 180") as refused:  # 16 is the shortest: only more text helps
        next(start(text="abcde", seq_len=16))
    assert "shorter" not in str(refused.value)


def test_bad_uploads_get_a_message(tmp_path):
    binary, latin1, big = tmp_path / "a.bin", tmp_path / "b.txt", tmp_path / "c.txt"
    binary.write_bytes(b"\x89PNG\x00\x00" * 100)
    latin1.write_bytes("café crème ".encode("latin-1") * 200)
    big.write_bytes(b"a" * (corpora.MAX_UPLOAD_BYTES + 1))
    for path, message in [(binary, "binary"), (latin1, "not UTF-8"), (big, "limit")]:
        with pytest.raises(gr.Error, match=message):
            tab.training_text(tab.OWN_TEXT, "", str(path))


def test_stop_is_active_only_while_a_run_goes_and_train_only_while_none_does():
    train, stop, status, session = tab.buttons_while_training(None)
    assert train.interactive is False and stop.interactive is True and stop.variant == "stop"
    assert session.waiting and "Starting" in status
    train, stop, _ = tab.buttons_when_idle()
    assert train.interactive is True and stop.interactive is False and stop.variant == "secondary"


def test_a_press_that_ends_on_a_mistake_says_nothing_was_trained_or_keeps_the_last_runs_status():
    *_, status, session = tab.buttons_while_training(None, tab.START_STATUS)
    assert "Starting" in status
    with pytest.raises(gr.Error, match="the text is empty"):  # own text chosen, nothing given
        next(tab.run_training(tab.OWN_TEXT, "", None, *[TINY[k] for k in ("cell", "layers", "hidden", "seq_len", "lr")],
                              5, session))
    # not "Starting…" for good, nor "Press Train to start" beside the message of the press
    assert tab.buttons_when_idle(session)[2] == "Nothing trained yet: the message under the **Train** button says why."
    try:
        *_, status, session = tab.buttons_while_training(session, tab.START_STATUS)
        *_, last = start(seconds=5, session=session)
        assert tab.buttons_when_idle(session)[2] == gr.skip()  # the finished run's own line stays
        finished = last[1]
        *_, session = tab.buttons_while_training(session, finished)
        with pytest.raises(gr.Error):
            next(start(seconds=5, session=session, cell="no such cell"))
        assert tab.buttons_when_idle(session)[2] == finished  # a mistake leaves the trained model's line
    finally:
        session.close()


def test_the_address_follows_the_form_before_any_training():
    query = form.form_query("Names", "gru", 2, 128, 64, 0.003, 30)
    assert query == form.settings_query("Names", LiveSettings(cell="gru", layers=2, hidden_size=128, seq_len=64,
                                                             learning_rate=0.003, seconds=30))
    assert form.form_query("Names", "gru", 2, 128, 64, 0.003, "") == gr.skip()  # a number half typed: kept as it was
    # a number typed past a slider's range goes in as the page uses it ("used 5"), not left at the last valid one
    for typed, used in [(1, 5), (999, 300)]:
        assert form.form_query("Names", "gru", 2, 128, 64, 0.003, typed) == form.form_query("Names", "gru", 2, 128, 64,
                                                                                            0.003, used)
        assert f"seconds={used}" in form.form_query("Names", "gru", 2, 128, 64, 0.003, typed)


def test_stop_while_the_run_waits_in_the_queue_cancels_it_and_the_next_click_trains():
    *_, session = tab.buttons_while_training(None)  # Train pressed; another page holds the training slot
    status, session, stop = tab.stop_training(session)
    assert "will not start" in status and stop.interactive is False
    outputs = list(start(seconds=5, session=session))  # the queue reaches it
    assert len(outputs) == 1 and "Cancelled before it started" in outputs[0][1] and session.run is None
    *_, session = tab.buttons_while_training(session)  # pressed again: this one trains
    try:
        *_, last = start(seconds=5, session=session)
        assert "finished after" in last[1] and session.model is not None
    finally:
        session.close()


def test_stop_before_any_run_and_a_second_train_click_get_messages():
    assert tab.stop_training(None)[0] == ""  # an info toast, not an error
    runs = start(seconds=30)
    _, _, _, session, _, _, _ = next(runs)
    try:
        with pytest.raises(gr.Error, match="already running"):
            next(start(session=session))
    finally:
        session.close()
        runs.close()


def test_runs_left_by_a_dead_server_are_removed_at_start(tmp_path, monkeypatch):
    monkeypatch.setattr(tab, "RUNS_ROOT", tmp_path)
    dead, alive = tmp_path / "999999999-abc", tmp_path / f"{__import__('os').getpid()}-def"
    for folder in (dead, alive):
        (folder / "run").mkdir(parents=True)
    tab.remove_stale_runs()
    assert not dead.exists() and alive.exists()


def test_a_missing_shakespeare_offline_tells_the_learner_what_to_pick_and_the_log_where_to_put_it(
        tmp_path, monkeypatch, caplog):
    import urllib.error

    from demos import corpora

    monkeypatch.delenv("RNN_PLAYGROUND_DATA", raising=False)
    monkeypatch.setattr(corpora, "ROOT", tmp_path / "project")
    monkeypatch.setattr(corpora, "CACHE", tmp_path / "cache")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(corpora.urllib.request, "urlopen", offline)
    monkeypatch.setattr(corpora, "_download_failed", False)
    assert "(to download)" in corpora.corpus_summary()
    corpora.fetch_shakespeare_in_background()  # start-up's download fails; a page opened after it says so at once
    for thread in threading.enumerate():
        if thread.name == "fetch-shakespeare":
            thread.join()
    corpus = form.fill_from_query(SimpleNamespace(query_params=""))[0]
    assert corpus["value"] == "Python code"
    assert "Tiny Shakespeare: 1.1 million characters of his plays (could not be downloaded on this server: pick " \
           "another)" in corpus["info"]
    with pytest.raises(gr.Error) as caught:
        tab.training_text("Tiny Shakespeare", "", None)
    message = str(caught.value)
    assert "name resolution" in message and "<" not in message and "Errno" not in message
    assert "Pick Python code or Names" in message and "RNN_PLAYGROUND_DATA" not in message  # what a learner can do
    assert "RNN_PLAYGROUND_DATA" in caplog.text and str(tmp_path / "cache") in caplog.text  # the host's fix
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "tinyshakespeare.txt").write_text("ROMEO:\nHello.\n" * 100, encoding="utf-8")
    text, prompt = tab.training_text("Tiny Shakespeare", "", None)  # the cache is read without the network
    assert text.startswith("ROMEO:") and prompt == "\n"


def test_a_transformer_of_any_width_the_slider_offers_gets_heads_that_divide_it():
    for hidden in range(16, 513, 16):
        try:
            LiveSettings(cell="transformer", hidden_size=hidden, layers=1).build(65)
        except LiveError as e:  # the widest are over the parameter cap, which is a fine refusal; RoPE's is not
            assert "parameters" in str(e) and hidden >= 256, (hidden, str(e))


def test_the_text_to_read_after_a_run_starts_at_a_line_and_ends_at_a_word():
    text = "".join(f"LINE {i}: some words here to read\n" for i in range(200))
    piece = tab.piece_to_read(text)
    assert piece.startswith("LINE ") and text.index(piece) >= len(text) * 9 // 10
    assert len(piece) <= 300 and text[text.index(piece) + len(piece)] in " \n"  # cut between words
    assert tab.piece_to_read("a short text")  # a text too short to cut still gives the views something to read


def test_tiny_shakespeare_is_the_default_and_not_marked_to_download_only_where_a_copy_is_at_hand(tmp_path, monkeypatch):
    from demos import corpora

    monkeypatch.delenv("RNN_PLAYGROUND_DATA", raising=False)
    monkeypatch.setattr(corpora, "ROOT", tmp_path / "project")
    monkeypatch.setattr(corpora, "CACHE", tmp_path / "cache")
    assert "Tiny Shakespeare: 1.1 million characters of his plays (to download)" in corpora.corpus_summary()
    # offline, the page opens on a corpus the first press can train on
    assert corpora.default_corpus() == "Python code" and corpora.load_corpus(corpora.default_corpus())
    assert form.fill_from_query(SimpleNamespace(query_params=""))[0]["value"] == "Python code"
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "tinyshakespeare.txt").write_text("ROMEO:\n", encoding="utf-8")
    assert "(to download)" not in corpora.corpus_summary() and "Names: 24,003 lower-case US names" in corpora.corpus_summary()
    assert corpora.default_corpus() == "Tiny Shakespeare"
    assert form.fill_from_query(SimpleNamespace(query_params=""))[0]["value"] == "Tiny Shakespeare"


def test_start_up_fetches_tiny_shakespeare_into_the_cache_once_when_no_copy_is_at_hand(tmp_path, monkeypatch):
    from demos import corpora

    monkeypatch.delenv("RNN_PLAYGROUND_DATA", raising=False)
    monkeypatch.setattr(corpora, "ROOT", tmp_path / "project")
    monkeypatch.setattr(corpora, "CACHE", tmp_path / "cache")
    calls = []

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def online(url, timeout):
        calls.append(url)
        return Response("ROMEO:\nHello.\n".encode())

    monkeypatch.setattr(corpora.urllib.request, "urlopen", online)
    started = []
    monkeypatch.setattr(corpora.threading, "Thread", lambda target, **kw: SimpleNamespace(start=lambda: started.append(target())))
    corpora.fetch_shakespeare_in_background()
    assert calls == [corpora.SHAKESPEARE_URL] and (tmp_path / "cache" / "tinyshakespeare.txt").read_text() == "ROMEO:\nHello.\n"
    corpora.fetch_shakespeare_in_background()  # a copy at hand: nothing is fetched again
    assert len(calls) == 1 and len(started) == 1 and corpora.default_corpus() == "Tiny Shakespeare"


def test_the_size_under_the_sliders_warns_of_the_parameter_cap_before_train_is_pressed():
    small, big = LiveSettings(cell="lstm", layers=1, hidden_size=256), LiveSettings(cell="lstm", layers=3, hidden_size=512)
    names = len(set(load_corpus("Names")))  # the embedding and output layers are as wide as the text's characters
    built = sum(p.numel() for p in small.build(names).parameters())  # what Train would build
    assert form.size_note("Names", "", None, "lstm", 1, 256) == (f"About {built:,} parameters for the text's {names} "
                                                               f"distinct characters (the cap is {MAX_PARAMETERS:,}).")
    with pytest.raises(LiveError) as refused:  # what pressing Train would say, for the same count
        big.build(names)
    count = big.parameter_count(names)
    assert f"{count:,} parameters" in str(refused.value) and "fewer layers or units" in str(refused.value)
    assert form.size_note("Names", "", None, "lstm", 3, 512).startswith(f"⚠️ About {count:,} parameters for the text's")
    assert "over this machine's cap" in form.size_note("Names", "", None, "lstm", 3, 512)
    assert isinstance(form.size_note("Names", "", None, "lstm", "", 256), type(gr.skip()))  # a box being typed in
    pasted = form.size_note(form.OWN_TEXT, "abcabc", None, "lstm", 1, 256)
    assert pasted == f"About {small.parameter_count(3):,} parameters for the text's 3 distinct characters (the cap is 2,000,000)."
    # an upload is read when training starts: until then the count is for a typical text, and says so
    uploaded = form.size_note(form.OWN_TEXT, "abc", {"path": "/etc/passwd"}, "lstm", 1, 256)
    assert uploaded.startswith(f"About {small.parameter_count(form.TYPICAL_VOCAB):,} parameters for a text of 65")
