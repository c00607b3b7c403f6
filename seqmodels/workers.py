"""The models' work in worker processes, each with its own Python interpreter and so its own lock.

Why: PyTorch lets go of Python's interpreter lock (GIL) in every tensor call and must take it back afterwards. In
the app's process, under a crowd, the lock is nearly always held by another request's Python work (Gradio's
pipeline, building figures), and taking it back can wait for the holder's switch interval (5 ms). Work made of
many small tensor calls then crawls: generating 200 characters (some 40 calls each) took 0.13 s alone and 1.6 s
with 20 clients, and the queue for generation made every client wait (``bench/load_test.py``); a loop of small
matrix-vector products ran 100 times slower beside one busy Python thread. In a process of its own the same work
waits only for a core.

``ModelWorkers`` starts the processes in the background. Each loads the same checkpoint folders as the app and
builds the same objects from them (``serving``), so a seed gives the same text either way (a test checks it), and
answers two kinds of request: ``generate`` streams a character model's tokens, and ``call`` runs a function of
``CALLS`` on a character model (the Inside the RNN views' unrolling and backpropagation through time) or a method of
``METHODS`` on a translator or captioner (``Served`` does that for the app's handlers, unchanged). While no worker
is up (start-up, a worker that died and is being replaced, Windows, which lacks ``pass_fds``), the caller does the
work in its own process.

The parent and a worker talk over a socket pair with ``multiprocessing.connection`` framing; a worker is
``python -m seqmodels.workers FD FOLDER...``, not a ``multiprocessing`` child, because a spawned child would re-run
``app.py``'s top level, which loads every model.
"""
from __future__ import annotations

import functools
import logging
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path

from . import inside
from .checkpoint import load_model
from .decoding import SamplingSettings, Token, generate

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
# what ``call`` may run in a worker: for a character model these functions of it (each takes the model first); for a
# translator or captioner these methods; all return tensors, plain values and dataclasses of them
CALLS: dict[str, Callable] = {f.__name__: f for f in (inside.unroll, inside.gradient_flow)}
METHODS = {"translate_passage", "caption_photos"}
BATCH_S = 0.02  # a worker sends its tokens in batches this often: the page updates at most every 0.1 s anyway
START_TIMEOUT_S = 600  # loading and warming six models takes some 10 s on an idle machine, minutes on a crowded one
WORKERS_READY = "* The models run in"  # the start of the line the app logs once every worker is up (or none will be)
WAIT_S = 30  # how long a request waits for a busy worker before doing the work itself
STOP_TIMEOUT_S = 10  # how long a stopped request may take to end before its worker is replaced


def _send(conn: Connection, message) -> None:
    # plain pickle, not Connection.send: torch registers its tensors with multiprocessing's pickler to travel as
    # shared memory handed over by a server that only a multiprocessing child (sharing its key) may reach
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _recv(conn: Connection):
    return pickle.loads(conn.recv_bytes())


class WorkerError(RuntimeError):
    """A worker process ended in the middle of a request."""


class NoWorker(Exception):
    """No worker process can take the request: none is up, or all stayed busy for ``WAIT_S``."""


class _Worker:
    def __init__(self, folders: list[str]):
        parent, child = socket.socketpair()
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)}
        # stdout to stderr: the worker has nothing to print, and the server's log is where its problems belong
        self.process = subprocess.Popen([sys.executable, "-m", "seqmodels.workers", str(child.fileno()), *folders],
                                        pass_fds=[child.fileno()], env=env, stdout=sys.stderr)
        child.close()
        self.conn = Connection(parent.detach())

    def stop(self) -> None:
        self.conn.close()  # the worker reads end-of-file and exits
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


class ModelWorkers:
    """``processes`` worker processes for the checkpoint folders ``add``ed before ``start``."""

    def __init__(self, processes: int = 2, on_ready: Callable[[int], None] | None = None):
        """``on_ready(processes)`` is called once every process is up (not if one fails to start)."""
        self.folders: list[str] = []
        self.processes = processes if os.name == "posix" else 0  # pass_fds is POSIX only: elsewhere, in process
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._closed = False
        self._up = 0  # workers that are ready, idle or busy
        self._waiting_for = self.processes
        self._on_ready = on_ready
        self._lock = threading.Lock()

    def add(self, folder: str | Path) -> str:
        """Have the workers load the checkpoint in ``folder`` (before ``start``); its resolved path."""
        folder = str(Path(folder).resolve())
        if folder not in self.folders:
            self.folders.append(folder)
        return folder

    def serve(self, service, folder: str | Path) -> "Served":
        """``service`` (built by ``serving`` from ``folder``) with its ``METHODS`` run by the workers."""
        return Served(service, self.add(folder), self)

    def start(self) -> None:
        """Start the processes in the background; until one is up, ``NoWorker`` tells callers to do the work."""
        if self.processes == 0 or not self.folders:
            self._waiting_for = 0
            if self._on_ready is not None:
                self._on_ready(0)
            return
        for _ in range(self.processes):
            self._start()

    def _start(self) -> None:
        threading.Thread(target=self._start_one, daemon=True, name="model-worker-start").start()

    def _start_one(self) -> None:
        try:
            worker = _Worker(self.folders)
        except OSError as e:
            log.warning("could not start a model worker (%s); its work stays in the app's process", e)
            return
        try:
            if not worker.conn.poll(START_TIMEOUT_S):
                raise EOFError(f"not ready within {START_TIMEOUT_S} s")
            kind, payload = _recv(worker.conn)
            if kind != "ready":
                raise EOFError(payload)
        except (EOFError, OSError) as e:
            log.warning("a model worker did not start (%s); its work stays in the app's process", e)
            worker.stop()
            return
        if self._closed:
            worker.stop()
            return
        with self._lock:
            self._up += 1
            self._waiting_for -= 1
            all_up = self._waiting_for == 0
        self._idle.put(worker)
        if all_up and self._on_ready is not None:
            self._on_ready(self._up)

    @property
    def idle(self) -> int:
        return self._idle.qsize()

    def _lease(self, folder: str | Path) -> tuple[_Worker, str]:
        folder = str(Path(folder).resolve())
        if folder not in self.folders or self._up == 0:
            raise NoWorker(folder)
        try:
            # wait for a busy worker rather than do the work here: here it is what the workers exist to avoid
            return self._idle.get(timeout=WAIT_S), folder
        except queue.Empty:
            raise NoWorker(folder) from None

    def generate(self, folder: str | Path, prompt_ids: list[int], settings: SamplingSettings,
                 alternatives: int = 0) -> Iterator[Token]:
        """``seqmodels.decoding.generate`` for the model in ``folder``, run by a worker; ``NoWorker`` if none can.

        The tokens stream as the worker makes them; closing the iterator early stops the worker's generation.
        """
        worker, folder = self._lease(folder)
        return self._stream(worker, ("generate", folder, list(prompt_ids), settings, alternatives))

    def call(self, folder: str | Path, function: Callable | str, *args, **kwargs):
        """``function(model in folder, *args)`` (one of ``CALLS``), or the method of that name (one of ``METHODS``) of
        the translator or captioner in ``folder``, run by a worker; ``NoWorker`` if none can. The worker's exception,
        if it raises one, is raised here."""
        name = function if isinstance(function, str) else function.__name__
        if not (name in METHODS or CALLS.get(name) is function):
            raise ValueError(f"{name} is not one of the calls a worker runs: {', '.join([*CALLS, *METHODS])}")
        worker, folder = self._lease(folder)
        [result] = self._stream(worker, ("call", folder, name, args, kwargs))
        return result

    def run(self, folder: str | Path, function: Callable | str, here: Callable, *args, **kwargs):
        """``call``, or ``here(*args, **kwargs)`` in this process when no worker can take it (``NoWorker``)."""
        try:
            return self.call(folder, function, *args, **kwargs)
        except NoWorker:
            return here(*args, **kwargs)

    def _stream(self, worker: _Worker, request: tuple) -> Iterator:
        """Send ``request``, then yield what comes back. The worker returns to the idle ones as soon as it has sent
        its last message, not when the caller has read the last token: a page that reads a stream slowly (Gradio
        updates it every 0.1 s or more) does not keep a worker from the next request."""
        try:
            _send(worker.conn, request)
            while True:
                messages = [_recv(worker.conn)]
                while messages[-1][0] == "tokens" and worker.conn.poll():  # everything it has sent by now
                    messages.append(_recv(worker.conn))
                if messages[-1][0] != "tokens":  # "done", "result" or "error": the worker's part is over
                    self._idle.put(worker)
                    worker = None
                for kind, payload in messages:
                    if kind == "tokens":
                        for token_id, prob, top in payload:
                            yield Token(token_id, prob, top)
                    elif kind == "result":
                        yield payload
                    elif kind == "error":  # the worker's own exception, e.g. an unreadable photo: the caller's
                        raise payload
                if worker is None:
                    return
        except (EOFError, OSError) as e:
            if worker is None:  # the request's own exception, raised above (an OSError too, say): not the worker's end
                raise
            self._replace(worker)
            worker = None
            raise WorkerError("a worker process of the app ended unexpectedly; please try again") from e
        finally:
            if worker is not None and not self._stop(worker):  # the caller stopped reading before the end
                self._replace(worker)
            elif worker is not None:
                self._idle.put(worker)

    def _stop(self, worker: _Worker) -> bool:
        """Ask ``worker`` to stop its request and wait for it to end; False if it did not."""
        try:
            _send(worker.conn, ("stop",))
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while worker.conn.poll(max(0.0, deadline - time.monotonic())):
                if _recv(worker.conn)[0] in ("done", "error"):
                    return True
        except (EOFError, OSError):
            pass
        return False

    def _replace(self, worker: _Worker) -> None:
        log.warning("a model worker ended or hung (exit code %s); starting another", worker.process.poll())
        with self._lock:
            self._up -= 1
        worker.stop()
        if not self._closed:
            self._start()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().stop()
            except queue.Empty:
                return


class Served:
    """A translator or captioner whose ``METHODS`` run in a worker when one can, and here otherwise; everything else
    (``config``, ``grid``, other methods) is the object's own."""

    def __init__(self, service, folder: str, workers: ModelWorkers):
        self._service, self._folder, self._workers = service, folder, workers

    def __getattr__(self, name: str):
        value = getattr(self._service, name)
        return functools.partial(self._workers.run, self._folder, name, value) if name in METHODS else value


def serving(model, tokenizer, config: dict):
    """What the app serves from a loaded checkpoint (``load_model``), warmed up: for a character model its fast
    stepper, for a translation or captioning model the service. The app's tabs and the workers both build theirs here,
    so both compute the same results."""
    import torch

    from .charlm import encode_prompt
    from .fastgen import fast_stepper
    from .image_captioner import ImageCaptioner
    from .translator import Translator

    if config["model_type"] == "seq2seq":
        translator = Translator(model, tokenizer, quantize=True)  # int8: see bench/translate_speed.py
        translator.translate(["Hello."], beam_size=2)  # the first call pays for lazy initialisation, not a user
        return translator
    if config["model_type"] == "captioner":
        # int8 decoder: beam search 3x faster on one thread (bench/caption_speed.py), the same test figures (README)
        captioner = ImageCaptioner(model, tokenizer, quantize=True)
        size = captioner.config.image_size
        captioner.caption_batch(torch.zeros(1, 3, size, size, dtype=torch.uint8), beam_size=2, max_words=3)
        return captioner
    # int8 and compiled (TorchScript; a C step for the linear RNNs): bench/generate_speed.py
    stepper = fast_stepper(model, quantize=True)
    # TorchScript specialises the step on its first calls, and the prompt's forward sets up its kernels on its first
    # multi-character input: done here, not in a user's request (the Text generation tab also warms its handler)
    warm_up_ids, _ = encode_prompt(tokenizer, "ROMEO:\n")
    for _ in generate(stepper, warm_up_ids, SamplingSettings(64, 0.8, seed=0), alternatives=5):
        pass
    return stepper


def _serve(conn: Connection, folders: list[str]) -> None:
    """The worker's loop: load the models, say ready, then answer requests until the app closes the connection."""
    import torch

    torch.set_num_threads(1)  # as in the app: one request's small products run fastest on one thread
    models, served = {}, {}
    for folder in folders:
        models[folder], tokenizer, config = load_model(folder)
        served[folder] = serving(models[folder], tokenizer, config)
    _send(conn, ("ready", folders))
    while True:
        try:
            request = _recv(conn)
        except EOFError:  # the app closed its end
            return
        try:
            if request[0] == "call":
                _, folder, name, args, kwargs = request
                result = CALLS[name](models[folder], *args) if name in CALLS else getattr(served[folder], name)(
                    *args, **kwargs)
                _send(conn, ("result", result))
            elif request[0] == "generate":
                _, folder, ids, settings, alternatives = request
                batch, sent = [], time.monotonic()
                for token in generate(served[folder], ids, settings, alternatives):
                    batch.append(tuple(token))
                    if time.monotonic() - sent >= BATCH_S:
                        _send(conn, ("tokens", batch))
                        batch, sent = [], time.monotonic()
                        if conn.poll() and _recv(conn)[0] == "stop":
                            break
                if batch:
                    _send(conn, ("tokens", batch))
                _send(conn, ("done", None))
            # anything else is a "stop" that arrived after its request had ended: nothing to do
        except (EOFError, BrokenPipeError, ConnectionResetError):  # the app closed its end mid-request
            return
        except Exception as e:  # noqa: BLE001 - the request's problem, raised in the app's caller, not the worker's end
            try:
                pickle.dumps(e)
            except Exception:  # noqa: BLE001 - an exception that cannot travel goes as its type and message
                e = RuntimeError(f"{type(e).__name__}: {e}")
            _send(conn, ("error", e))


if __name__ == "__main__":
    try:
        _serve(Connection(int(sys.argv[1])), sys.argv[2:])
    except (BrokenPipeError, ConnectionResetError):
        pass  # the app went away (stopped, or restarted by `gradio app.py`): nothing is left to answer
