"""The character models' work in worker processes (seqmodels/workers.py): the same text and the same Inside values
as in the app's process, streamed, stoppable, and a worker that dies is reported and replaced."""
import time

import gradio as gr
import pytest
import torch

from demos import textgen
from seqmodels import SamplingSettings, generate, save_model
from seqmodels.fastgen import fast_stepper
from seqmodels.inside import gradient_flow, unroll
from seqmodels.workers import ModelWorkers, NoWorker, WorkerError

from conftest import make_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from seqmodels import CharTokenizer
    from conftest import TINY_TEXT
    tokenizer = CharTokenizer.from_text(TINY_TEXT)
    path = tmp_path_factory.mktemp("gru")
    save_model(path, make_model(tokenizer, "gru"), tokenizer)
    return path


def started(folders, processes: int) -> ModelWorkers:
    pool = ModelWorkers(processes)
    for folder in folders:
        pool.add(folder)
    pool.start()
    return ready(pool, processes)


def ready(workers: ModelWorkers, count: int, timeout: float = 120) -> ModelWorkers:
    deadline = time.time() + timeout
    while workers.idle < count:
        assert time.time() < deadline, f"{count} worker(s) not ready within {timeout} s"
        time.sleep(0.1)
    return workers


@pytest.fixture(scope="module")
def workers(folder):
    pool = started([folder], 1)
    yield pool
    pool.close()


def in_process(folder, ids, settings, alternatives=0):
    from seqmodels import load_model
    model, _, _ = load_model(folder)
    return list(generate(fast_stepper(model, quantize=True), ids, settings, alternatives))


def test_a_worker_process_writes_the_same_tokens_as_this_process_for_a_seed(workers, folder):
    settings = SamplingSettings(max_new_tokens=120, temperature=0.8, top_k=5, seed=3)
    remote = list(workers.generate(folder, [1, 2, 3], settings, alternatives=5))
    assert remote == in_process(folder, [1, 2, 3], settings, alternatives=5)
    assert len(remote) == 120 and len(remote[0].top) == 5


def test_closing_the_stream_early_stops_the_worker_and_frees_it_for_the_next_request(workers, folder):
    stream = workers.generate(folder, [1], SamplingSettings(max_new_tokens=100_000, seed=0))
    next(stream)
    assert workers.idle == 0
    started = time.time()
    stream.close()  # what Gradio does when the page goes away mid-stream
    assert workers.idle == 1 and time.time() - started < 5  # 100,000 characters would take ~1 minute
    settings = SamplingSettings(max_new_tokens=20, seed=1)
    assert list(workers.generate(folder, [1], settings)) == in_process(folder, [1], settings)


def test_a_worker_runs_the_inside_views_computations_with_the_same_results(workers, folder):
    from seqmodels import load_model
    model, _, _ = load_model(folder)
    ids = [1, 2, 3, 4, 5, 6, 7, 8]
    norms, loss = workers.call(folder, gradient_flow, ids)
    here_norms, here_loss = gradient_flow(model, ids)
    assert torch.equal(norms, here_norms) and loss == here_loss
    run, here = workers.call(folder, unroll, ids), unroll(model, ids)
    assert all(torch.equal(a, b) for a, b in zip(run.hidden, here.hidden)) and torch.equal(run.logits, here.logits)
    with pytest.raises(ValueError, match="at least two characters"):  # the function's own error, as it is here
        workers.call(folder, gradient_flow, [1])
    with pytest.raises(ValueError, match="not one of the calls"):
        workers.call(folder, load_model, ids)


def test_for_a_model_the_workers_did_not_load_or_while_all_stay_busy_it_says_no_worker(workers, folder, tmp_path,
                                                                                     monkeypatch):
    with pytest.raises(NoWorker):
        workers.generate(tmp_path, [1], SamplingSettings(5))
    busy = workers.generate(folder, [1], SamplingSettings(max_new_tokens=100_000, seed=0))  # about a minute's work
    next(busy)
    monkeypatch.setattr("seqmodels.workers.WAIT_S", 0.2)
    with pytest.raises(NoWorker):
        workers.generate(folder, [1], SamplingSettings(5))
    busy.close()


def test_a_worker_that_dies_mid_request_is_reported_clearly_and_replaced(folder):
    pool = started([folder], 1)
    try:
        worker = pool._idle.queue[0]
        stream = pool.generate(folder, [1], SamplingSettings(max_new_tokens=100_000, seed=0))
        next(stream)
        worker.process.kill()
        with pytest.raises(WorkerError, match="ended unexpectedly"):
            for _ in stream:
                pass
        ready(pool, 1)  # a new worker took its place
        assert pool._idle.queue[0] is not worker
        assert len(list(pool.generate(folder, [1], SamplingSettings(max_new_tokens=10, seed=0)))) == 10
    finally:
        pool.close()


def test_the_text_generation_tab_generates_through_the_workers_and_tells_of_a_dead_one_in_a_message(workers, folder):
    from seqmodels import load_model
    model, tokenizer, _ = load_model(folder)
    tm = textgen.TextModel("GRU", folder, model, tokenizer, fast_stepper(model, quantize=True), 1.5)
    models = {"GRU": tm}
    here = list(textgen.generate_text("ANNA:", "GRU", 0.8, 0, 1.0, 80, 7, True, models=models))[-1]
    tm.workers = workers
    there = list(textgen.generate_text("ANNA:", "GRU", 0.8, 0, 1.0, 80, 7, True, models=models))[-1]
    assert there[0] == here[0] and there[1] == here[1]  # the same text and colours; only the timing line differs

    class Dying:
        def generate(self, *args):
            def tokens():
                yield from []
                raise WorkerError("a worker process of the app ended unexpectedly; please try again")
            return tokens()
    tm.workers = Dying()
    with pytest.raises(gr.Error, match="ended unexpectedly"):
        list(textgen.generate_text("ANNA:", "GRU", 0.8, 0, 1.0, 80, 7, True, models=models))


def test_a_served_translator_translates_in_a_worker_as_here_and_raises_its_own_errors_there():
    from seqmodels import TranslationError, load_model
    from seqmodels.workers import serving
    from conftest import ROOT
    folder = ROOT / "checkpoints" / "translate-en-fr"  # the shipped model: it travels with the repository
    here = serving(*load_model(folder))
    pool = ModelWorkers(1)
    served = pool.serve(here, folder)
    pool.start()
    try:
        ready(pool, 1)
        there = served.translate_passage("Where is the nearest train station? I am lost.", beam_size=3)
        local = here.translate_passage("Where is the nearest train station? I am lost.", beam_size=3)
        assert there.text == local.text and len(there.sentences) == 2
        assert torch.equal(there.sentences[1].attention, local.sentences[1].attention)
        with pytest.raises(TranslationError):  # the worker's exception, raised in the caller as it is
            served.translate_passage("   ")
        assert served.prepare == here.prepare  # what is not one of METHODS is the object's own
    finally:
        pool.close()


def test_a_request_that_fails_with_an_os_error_is_raised_as_is_and_the_worker_kept(tmp_path):
    import socket
    import types
    from multiprocessing.connection import Connection
    from seqmodels.workers import _send
    pool = ModelWorkers(0)
    folder = pool.add(tmp_path)
    ours, theirs = socket.socketpair()
    worker = types.SimpleNamespace(conn=Connection(ours.detach()), process=None)  # a worker that answers as we say
    pool._up = 1
    pool._idle.put(worker)
    peer = Connection(theirs.detach())
    _send(peer, ("error", FileNotFoundError("no such photo")))  # its answer, waiting before the request goes
    with pytest.raises(FileNotFoundError, match="no such photo"):
        pool.call(folder, "caption_photos", ["missing.jpg"])
    assert pool.idle == 1 and pool._idle.queue[0] is worker  # an OSError of the request is not a broken connection
