"""RNN Playground: a Gradio app that shows recurrent neural networks at work.

    python app.py            # serves on http://127.0.0.1:7860 (--host / --port, or GRADIO_SERVER_NAME / _PORT)
    gradio app.py            # the same with reload on code changes

Each tab lives in ``demos/``; this file loads every model once, at start-up, and renders the tabs, handing
each tab the models it runs.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def command_line() -> argparse.Namespace:
    """Flags for people, the environment for hosts (a Space sets GRADIO_SERVER_NAME); `--port` was once ignored.
    Read before the models load, so --help or a wrong flag answers at once."""
    parser = argparse.ArgumentParser(description="Serve RNN Playground.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (0.0.0.0: every interface; default: %(default)s)")
    parser.add_argument("--port", type=int, default=os.environ.get("GRADIO_SERVER_PORT", "7860"),
                        help="port to serve on (default: %(default)s)")
    return parser.parse_args()


ARGS = command_line() if __name__ == "__main__" else None

# Gradio keeps a record of every event (up to 10,000) and rebuilds a pandas table of all of them after each one,
# for its monitoring page, on the server's event loop: under a crowd that grew to a tenth of the time the server
# held Python's lock. Once every 500 events, over the last 2,000, keeps the page's figures and drops that cost.
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "2000")
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "500")

import gradio as gr  # noqa: E402 - after the settings above, which it reads when it builds the queue
import torch

from demos import caption, inside, textgen, train, train_form, translate
from demos.style import CSS, HEAD
from seqmodels.workers import WORKERS_READY, ModelWorkers

ROOT = Path(__file__).resolve().parent
CHECKPOINTS = Path(os.environ.get("RNN_PLAYGROUND_CHECKPOINTS", ROOT / "checkpoints"))

# Single-stream decoding is a chain of small matrix-vector products: one thread per request runs them
# faster than two (measured here), and leaves the other core to a second request.
torch.set_num_threads(1)

# The models' work moves to worker processes, each with its own interpreter lock, once they are up (seqmodels/workers.py
# says why); until then, and with RNN_PLAYGROUND_WORKERS=0, it runs in this process. One per core: four served no more
# requests here than two (bench/load_test.py) and each holds its own copy of the models (about 0.7 GB of memory).
_PROCESSES = os.environ.get("RNN_PLAYGROUND_WORKERS", "2")
if not _PROCESSES.isdigit():
    raise SystemExit(f"RNN_PLAYGROUND_WORKERS must be a whole number of processes (0 for none), not {_PROCESSES!r}")
WORKERS = ModelWorkers(int(_PROCESSES), on_ready=lambda n: print(
    f"{WORKERS_READY} {n} worker processes" if n else f"{WORKERS_READY} the app's process", flush=True))
CHAR_MODELS, CHAR_PROBLEMS = textgen.load_models(CHECKPOINTS, WORKERS)  # Text generation and Inside the RNN share them
TRANSLATION_MODELS, TRANSLATION_PROBLEMS = translate.load_models(CHECKPOINTS, WORKERS)
CAPTION_MODELS, CAPTION_PROBLEMS = caption.load_models(CHECKPOINTS, WORKERS)
WORKERS.start()

with gr.Blocks(title="RNN Playground") as demo:
    gr.Markdown(
        "# RNN Playground\nRecurrent neural networks at work: vanilla RNN, LSTM and GRU models, and the modern "
        "minGRU and RG-LRU beside a Transformer, trained on real data, running on this machine's CPU. **Text "
        "generation** lets them write; **Translation** turns English into French and **Image captioning** describes "
        "a photo, each showing where it looks; **Inside the RNN** shows what they do while they read; **Train** "
        "lets you train your own and watch it learn."
    )
    # wrap, not Gradio's default overflow menu: on a phone the menu hid three of the five tabs behind "⋯"
    with gr.Tabs(overflow_behavior="wrap") as tabs:
        with gr.Tab("Text generation", id="textgen"):
            textgen.build_tab(CHAR_MODELS, CHAR_PROBLEMS)
        with gr.Tab("Translation", id="translate"):
            translate.build_tab(TRANSLATION_MODELS, TRANSLATION_PROBLEMS)
        with gr.Tab("Image captioning", id="caption"):
            caption.build_tab(CAPTION_MODELS, CAPTION_PROBLEMS)
        with gr.Tab("Inside the RNN", id="inside"):
            inside.build_tab(CHAR_MODELS)  # the same models, loaded once; a missing one is reported in Text generation
        with gr.Tab("Train", id="train"):
            TRAIN_FORM, _ = train.build_tab()
    # a shared link (?corpus=...&cell=...) fills the Train tab's form and opens it
    demo.load(train_form.fill_from_query, None, [*TRAIN_FORM, tabs], api_name=False)

# Queue: up to 64 requests wait; beyond that Gradio answers "This application is currently busy" instead of piling up
# work. At most 4 run at once per event while the worker processes are up, else 2 (one per core). An event's slot then
# mostly waits for a worker, and the workers take requests in arrival order whatever their event: with 2 slots per
# event each endpoint queued on its own, and under 20 clients (bench/load_test.py) the caption's median was 1.7 s while
# the hidden states' was 0.8 s; with 4 every median was 1.0-1.3 s in four runs, for as many requests served.
demo.queue(max_size=64, default_concurrency_limit=4 if WORKERS.processes else 2)

if __name__ == "__main__":
    demo.launch(
        server_name=ARGS.host,
        server_port=ARGS.port,
        max_file_size="10mb",
        css=CSS,
        head=HEAD,
        # Gradio 6.31 announces each finished event to screen readers as "common.complete", a key its English lacks
        i18n=gr.I18n(en={"common.complete": "Done"}),
    )
