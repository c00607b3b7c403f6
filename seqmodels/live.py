"""Live training: one character model trained in a child process while a page watches it learn.

``LiveSettings`` holds what a person may choose, checked against hard caps (a public Space has 2 CPUs
shared by everyone). ``LiveRun`` starts the one training loop (``seqmodels.training.train``) in a child
process (``python -m seqmodels.live FOLDER``) with one torch thread, so the server's request threads keep the other core and never wait on the
training's Python (no shared GIL), and streams its records back: training loss every few steps, and at
each evaluation (every ``eval_every_s`` seconds) the validation loss with a sample from a fixed prompt.
Stop ends the run like a spent time budget: one last evaluation, the best weights kept in ``folder``, a
checkpoint folder like any other (``train.charlm sample`` and ``evaluate`` load it).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .charmodels import CHAR_CELLS, build_char_model
from .data.text import CharLMTask, split_ids
from .decoding import SamplingSettings, sample
from .tokenizers import CharTokenizer

MAX_SECONDS = 300  # a run's time limit, evaluation included
MAX_PARAMETERS = 2_000_000  # what one core trains visibly in a few minutes
MAX_TEXT_CHARS = 1_200_000  # Tiny Shakespeare (1.1M characters) fits
VAL_CHARS = 20_000  # the validation text is capped so an evaluation takes well under a second
SAMPLE_CHARS = 200
ORPHAN_AFTER_S = 10.0  # a run nobody has polled for this long has lost its page (a closed tab, a cancelled call): end it
LIMITS = {  # setting -> (lowest, highest)
    "layers": (1, 3), "hidden_size": (16, 512), "seq_len": (16, 256), "learning_rate": (1e-4, 3e-2),
    "seconds": (5, MAX_SECONDS), "batch_size": (1, 128),
}


class LiveError(ValueError):
    """Settings or a text that cannot be trained on; the message is meant for the person."""


@dataclass
class LiveSettings:
    # The defaults learn fastest in a minute on one core, measured on Tiny Shakespeare (best validation loss after
    # 60 s, the training alone). On a Xeon with AMX/AVX-512 bf16, where bf16 autocast runs the LSTM's fused kernel at
    # twice its fp32 speed: LSTM 1 x 256 at lr 1e-2 1.476; 1 x 320 1.500; 1 x 192 1.503; 2 x 192 1.566; 1 x 256 with
    # batches of 64 1.553; GRU 1 x 192 1.592 (no faster in bf16). In fp32 on the same machine: LSTM 1 x 192 1.546,
    # 1 x 256 1.563, GRU 1 x 192 1.573. A short run wants a high rate: 1.5e-2 or 2e-2 end worse, as 5e-3 does.
    cell: str = "lstm"
    layers: int = 1
    hidden_size: int = 256
    seq_len: int = 64
    learning_rate: float = 1e-2
    seconds: float = 60
    batch_size: int = 32
    eval_every_s: float = 4.0
    prompt: str = "\n"  # every sample starts here, so one sees the same start improve

    def __post_init__(self):
        if self.cell not in CHAR_CELLS:
            raise LiveError(f"unknown cell {self.cell!r}; choose one of {', '.join(CHAR_CELLS)}")
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not lo <= value <= hi:  # also rejects NaN
                raise LiveError(f"{name.replace('_', ' ')} must be between {lo:g} and {hi:g}, not {value!r}")
        for name in ("layers", "hidden_size", "seq_len", "batch_size"):
            if int(getattr(self, name)) != getattr(self, name):
                raise LiveError(f"{name.replace('_', ' ')} must be a whole number, not {getattr(self, name)!r}")
            setattr(self, name, int(getattr(self, name)))

    def _model(self, vocab_size: int):
        try:
            # a Transformer gets as many heads (up to 4) as its width splits into for RoPE
            heads = next((h for h in (4, 2, 1) if self.hidden_size % (2 * h) == 0), 1)
            return build_char_model(self.cell, dict(vocab_size=vocab_size, hidden_size=self.hidden_size,
                                                    num_layers=self.layers, context=self.seq_len, num_heads=heads))
        except ValueError as e:  # e.g. a Transformer width its heads cannot split
            raise LiveError(str(e)) from None

    def parameter_count(self, vocab_size: int) -> int:
        """How many parameters ``build`` would make, counted on the meta device: no memory, no initialisation."""
        with torch.device("meta"):
            return sum(p.numel() for p in self._model(vocab_size).parameters())

    def build(self, vocab_size: int):
        """A fresh model of these settings; a LiveError when it is over the parameter cap."""
        model = self._model(vocab_size)
        n = sum(p.numel() for p in model.parameters())
        if n > MAX_PARAMETERS:
            raise LiveError(f"this model has {n:,} parameters; the cap here is {MAX_PARAMETERS:,}: "
                            "use fewer layers or units (a smaller hidden size)")
        return model


def check_text(text: str, settings: LiveSettings) -> str:
    """The text to train on, or a LiveError saying why it cannot be."""
    if not text or not text.strip():
        raise LiveError("the text is empty: pick a corpus, or paste or upload some text")
    if len(text) > MAX_TEXT_CHARS:
        raise LiveError(f"the text is {len(text):,} characters long; the limit is {MAX_TEXT_CHARS:,}")
    if "\x00" in text:
        raise LiveError("this looks like a binary file, not text")
    needed = 10 * (settings.seq_len + 2)  # 90% trains and 10% validates; each needs a sequence or more
    if len(text) < needed:
        shorter = settings.seq_len > LIMITS["seq_len"][0]  # at the shortest, only more text helps
        raise LiveError(f"the text has {len(text):,} characters; with sequences of {settings.seq_len} it needs at "
                        f"least {needed:,}" + (" (or use a shorter sequence length)" if shorter else ""))
    return text


def _worker(settings: dict, text: str, folder: str, emit: Callable[[dict], None], stop: threading.Event) -> None:
    """The child process's work: build, train with the shared loop, ``emit`` records until done."""
    from .cards import build_card, hardware_summary  # imported here: the parent need not load them for a child's sake
    from .checkpoint import CheckpointSpec
    from .training import TrainConfig, TrainingError, train

    try:
        s = LiveSettings(**settings)
        tokenizer = CharTokenizer.from_text(text)
        ids = torch.tensor(tokenizer.encode(text).ids, dtype=torch.long)
        train_ids, val_ids = split_ids(ids)
        model = s.build(tokenizer.vocab_size)
        prompt = tokenizer.encode(s.prompt).ids or [0]
        task = CharLMTask(train_ids, val_ids[:VAL_CHARS], s.batch_size, s.seq_len,
                          CheckpointSpec(tokenizer), eval_streams=8)
        emit({"split": "start", "parameters": sum(p.numel() for p in model.parameters()),
              "vocab_size": tokenizer.vocab_size, "train_chars": len(train_ids), "val_chars": len(task.val_ids)})

        def on_event(record: dict[str, Any]) -> bool:
            if record["split"] == "val":  # sample from the model as it is now: the page shows the text improve
                was_training = model.training
                model.eval()
                ids_out = sample(model, prompt, SamplingSettings(max_new_tokens=SAMPLE_CHARS, temperature=0.8, seed=0))
                model.train(was_training)
                # with its start ("def " for code), as a reader expects; a newline start shows as nothing
                record = {**record, "sample": tokenizer.decode(prompt + ids_out).lstrip("\n")}
            if record["split"] != "step":
                emit(record)
            return stop.is_set()

        cfg = TrainConfig(out_dir=folder, max_steps=10_000_000, learning_rate=s.learning_rate,
                          min_lr=s.learning_rate / 10, warmup_steps=20, eval_interval=10_000_000,
                          eval_every_s=s.eval_every_s, log_interval=5, progress=False, time_budget_s=s.seconds,
                          dtype="auto")  # bf16 where the CPU computes it natively: the LSTM trains twice as fast
        summary = train(model, task, cfg, on_event)
        best = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))["metrics"]
        card = build_card(
            ["rnn-playground", "char-lm", s.cell],
            f"A {CHAR_CELLS[s.cell][1].split(' (')[0].split(':')[0]} trained live in RNN Playground's Train tab",
            f"{sum(p.numel() for p in model.parameters()):,} parameters, trained for {summary['elapsed_s']:.0f} s "
            f"({summary['steps']:,} steps) on {hardware_summary()}.",
            [("Training", [f"- Settings: `{json.dumps(asdict(s))}`",
                           f"- Text: {len(text):,} characters, {tokenizer.vocab_size} distinct; the first 90% trains",
                           f"- Best validation loss: {best['val_loss']:.4f} nats/char at step {best['step']} "
                           f"(on the first {len(task.val_ids):,} characters of the last 10%)",
                           "- Sample: `python -m train.charlm sample --checkpoint THIS_FOLDER --prompt \"...\"`"])])
        (Path(folder) / "README.md").write_text(card, encoding="utf-8")
        emit({"split": "done", **summary})
    except (LiveError, TrainingError) as e:
        emit({"split": "error", "message": str(e)})
    except Exception as e:  # noqa: BLE001 - the page must hear of any failure, not wait forever
        emit({"split": "error", "message": f"training failed: {type(e).__name__}: {e}"})


class LiveRun:
    """One training in a child process; poll its records, stop it, or kill it.

    The child is ``python -m seqmodels.live FOLDER`` (not multiprocessing, which would import the server's
    main module again, models and all): the settings and the text go in as files in ``folder``, records come
    back as JSON lines on its stdout, and a line on its stdin asks it to stop. A parent that dies closes
    that stdin, and the child stops too.
    """

    def __init__(self, settings: LiveSettings, text: str, folder: str | Path):
        """``folder`` gets the inputs; its ``model`` subfolder becomes the checkpoint (``self.folder``)."""
        self.settings, self.folder = settings, Path(folder) / "model"
        check_text(text, settings)
        settings.build(len(set(text)))  # the parameter cap, checked before a process starts
        shutil.rmtree(self.folder, ignore_errors=True)  # a page's new run replaces its last model
        self.folder.mkdir(parents=True)
        (self.folder.parent / "input.txt").write_text(text, encoding="utf-8")
        (self.folder.parent / "settings.json").write_text(json.dumps(asdict(settings)), encoding="utf-8")
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        self._process = subprocess.Popen([sys.executable, "-m", "seqmodels.live", str(self.folder.parent)], cwd=root, env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True, bufsize=1)
        self._events: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._last_poll = time.time()
        self.finished = False
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        """End the process when nobody polls any more: a page that closed mid-run frees its core within seconds.
        (A web framework stops pulling a cancelled streaming handler without telling it.)"""
        while self.alive():
            if time.time() - self._last_poll > ORPHAN_AFTER_S:
                self.kill()
                return
            time.sleep(0.5)

    def _read(self) -> None:
        for line in self._process.stdout:
            try:
                self._events.put(json.loads(line))
            except json.JSONDecodeError:
                continue  # a stray print is not a record
        self._events.put(None)  # end of output

    def poll(self, timeout: float = 0.0) -> list[dict]:
        """Records that arrived since the last call (waits up to ``timeout`` for the first one)."""
        self._last_poll = time.time()
        records = []
        try:
            records.append(self._events.get(timeout=timeout) if timeout else self._events.get_nowait())
            while True:
                records.append(self._events.get_nowait())
        except queue.Empty:
            pass
        ended = None in records
        records = [r for r in records if r is not None]
        if any(r["split"] in ("done", "error") for r in records):
            self.finished = True
        elif ended:
            self.finished = True
            records.append({"split": "error", "message": "the training process ended unexpectedly "
                                                         f"(exit code {self._process.wait()})"})
        return records

    def stop(self) -> None:
        """Ask the run to end after its current step; it evaluates once more and keeps the best weights."""
        try:
            self._process.stdin.write("stop\n")
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):  # already gone
            pass

    def kill(self) -> None:
        """End the process now (a closed page); nothing more is saved."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self.finished = True

    def alive(self) -> bool:
        return self._process.poll() is None


def _main(folder: str) -> None:
    """The child: read the settings and text from ``folder``, train into ``folder/model``, print records as JSON lines."""
    torch.set_num_threads(1)
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.readline()  # a line ("stop") or EOF (the parent is gone): either way, stop
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    out = sys.stdout
    sys.stdout = sys.stderr  # anything else that prints must not mix with the records

    def emit(record: dict) -> None:
        out.write(json.dumps(record) + "\n")
        out.flush()

    path = Path(folder)
    text = (path / "input.txt").read_text(encoding="utf-8")
    (path / "input.txt").unlink()  # read once; a person's text is not kept on disk for the rest of the session
    _worker(json.loads((path / "settings.json").read_text(encoding="utf-8")), text, str(path / "model"), emit, stop)


if __name__ == "__main__":
    _main(sys.argv[1])
