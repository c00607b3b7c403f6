"""Model cards: the README.md of a checkpoint folder, as on the Hugging Face hub.

    build_card(tags, title, intro, sections)   # front matter, title, intro, then each (heading, lines) section
    record_evaluation(folder, line)            # append a measured result to the card's Evaluation section
    hardware_summary(), file_digest(path)      # what a card says about where it was trained and on which data
    hub_card(text, config, datasets, ...)      # the card with the metadata a Hub model repo shows (train.hub push)

A card records what a person needs to trust a checkpoint's figures: the exact command, the data (with a
digest of the file), the hardware, the time and the metrics. Every training script builds its card here,
so every card has the same layout and ends with the Evaluation section that `evaluate --record` fills.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from .files import atomic_write_text

EVALUATION = "## Evaluation"

# config.json's metrics -> (the Hub's metric id, its name on the model page); the other keys (step, time,
# data sizes) are not results. Losses are in nats per character for character models, per token otherwise.
HUB_METRICS = {"val_loss": ("loss", "validation loss (nats per {unit})"),
               "val_bpc": ("bpc", "validation bits per character"), "val_ppl": ("perplexity", "validation perplexity"),
               "val_bleu": ("bleu", "validation BLEU"), "val_bleu4": ("bleu", "validation BLEU-4"),
               "val_cider": ("cider", "validation CIDEr")}
# model_type -> the Hub's task for it (the repo's pipeline tag)
HUB_TASKS = {"charlm": "text-generation", "linear-rnn-lm": "text-generation", "transformer-lm": "text-generation",
             "seq2seq": "translation", "captioner": "image-to-text"}


def build_card(tags: list[str], title: str, intro: str, sections: list[tuple[str, list[str]]]) -> str:
    """A card: YAML front matter (the hub reads the tags), ``# title``, ``intro``, each section's lines under
    its ``## heading``, and last an empty Evaluation section for ``record_evaluation``."""
    lines = ["---", "library_name: pytorch", f"tags: [{', '.join(tags)}]", "---", "", f"# {title}", "", intro, ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", *body, ""]
    return "\n".join(lines + [EVALUATION, ""])


def record_evaluation(folder: str | Path, line: str) -> None:
    """Append ``line`` (one Markdown list item) to the end of the card's Evaluation section.

    A card without that section (or a folder without a card) gets one at its end. Shipped cards may name
    the section at more length ("## Evaluation (after training, ...)") and follow it with other sections,
    so the line goes after the section's last line, not at the end of the file.
    """
    card = Path(folder) / "README.md"
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    start = next((i for i, s in enumerate(lines) if s.startswith(EVALUATION)), None)
    if start is None:
        lines += ["", EVALUATION] if lines else [EVALUATION]
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("# ", "## "))), len(lines))
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    # a list item joins the list or follows the heading; after a paragraph it needs a blank line, or
    # Markdown runs it into the paragraph
    new = [line] if end == start + 1 or lines[end - 1].startswith("- ") else ["", line]
    lines[end:end] = new
    atomic_write_text(card, "\n".join(lines) + "\n")


def file_digest(path: str | Path) -> str:
    """The first 16 hex digits of the file's SHA-256: enough for a card to say which data it was trained on."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def hardware_summary() -> str:
    """A one-line description of where this process runs, for model cards."""
    import platform

    if torch.cuda.is_available():
        names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
        return f"{torch.cuda.device_count()}x {', '.join(names)}; torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    vector = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        for line in info.splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        # the same model name covers machines with and without bf16 arithmetic, 2-3x apart in training speed
        flags = set(re.findall(r"\b(avx512_bf16|amx_bf16|avx512f|avx2)\b", info))
        vector = (" (AVX-512 with bf16)" if flags & {"avx512_bf16", "amx_bf16"} else " (AVX-512, no bf16)"
                  if "avx512f" in flags else " (AVX2, no bf16)" if "avx2" in flags else "")
    except OSError:
        pass
    threads = torch.get_num_threads()
    return (f"{cpu}{vector}, {os.cpu_count()} cores, {threads} torch thread{'' if threads == 1 else 's'}, no GPU; "
            f"torch {torch.__version__}")


def hub_card(text: str, config: dict, datasets: list[str], license: str, name: str) -> str:
    """The card ``text`` as a Hub model repo shows it: the front matter it has (``library_name``, ``tags``) plus
    ``datasets``, ``license``, the task, and ``metrics`` with the figures of ``config["metrics"]`` (measured on the
    validation split of ``datasets[0]``) as the Hub's ``model-index`` results, named ``name``; with no ``datasets``
    (a model trained on a local file) no results, which the Hub ties to a dataset. huggingface_hub's own
    ModelCard writes the front matter, so it is in the form the Hub parses."""
    from huggingface_hub import EvalResult, ModelCard

    card = ModelCard(text)
    task = HUB_TASKS[config["model_type"]]
    unit = "character" if task == "text-generation" else "token"
    results = [EvalResult(task_type=task, dataset_type=datasets[0], dataset_name=datasets[0], dataset_split="validation",
                          metric_type=metric, metric_name=label.format(unit=unit), metric_value=round(float(value), 4))
               for key, (metric, label) in HUB_METRICS.items()
               if datasets and isinstance(value := config.get("metrics", {}).get(key), (int, float))]
    data = card.data
    data.library_name = data.library_name or "pytorch"
    data.tags = list(dict.fromkeys([*(data.tags or []), "rnn-playground"]))
    data.datasets, data.license, data.pipeline_tag = list(datasets) or None, license, task
    data.metrics = list(dict.fromkeys(r.metric_type for r in results)) or None
    data.model_name, data.eval_results = name, results or None
    return str(card)
