"""Checkpoint folders, laid out like a Hugging Face model repo.

    config.json          {"model_type": ..., "config": {...}, "metrics": {...}}  -- rebuilds the model, no flags
    model.safetensors    weights only (fp32, or fp16 for shipping); never a pickle
    tokenizer.json       the tokenizer the model was trained with
    README.md            model card: command, data, time, hardware, measured metrics

Resume state (optimizer, step, RNG) lives beside the weights in ``resume.pt`` plus
``resume.safetensors``; ``resume.pt`` holds only tensors and plain containers and is loaded with
``torch.load(..., weights_only=True)``, so a checkpoint folder from an unknown source cannot run code.
Every file is written atomically (``seqmodels.files``): a crash leaves either the old file or the new one,
never half of one.

Every loader takes a checkpoint as a folder or as a Hugging Face Hub model repo id, ``OWNER/NAME`` or
``OWNER/NAME@REVISION``: ``resolve_checkpoint`` turns either into a local folder (a Hub repo is downloaded
once into the Hub cache by ``huggingface_hub.snapshot_download``; ``HF_HUB_OFFLINE=1`` reads only the cache).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .caption import Captioner
from .charlm import CharLM
from .linear_rnn import LinearRNNLM
from .files import atomic_save_tensors, atomic_torch_save, atomic_write_text
from .seq2seq import Seq2Seq
from .tokenizers import tokenizer_from_dict
from .transformer import TransformerLM

# model_type -> model class; each class carries its config dataclass as ``config_class``
MODELS: dict[str, type] = {m.model_type: m for m in (CharLM, LinearRNNLM, TransformerLM, Seq2Seq, Captioner)}


class CheckpointError(Exception):
    """A checkpoint folder is missing, incomplete or corrupt; the message says which and how."""


# A Hub model repo, optionally pinned to a branch, tag or commit: OWNER/NAME[@REVISION] (the spelling
# huggingface_hub's HfFileSystem uses). Anything with more slashes, or starting with "." or "/", is a path.
HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[^\s@]+))?")


def resolve_checkpoint(name: str | Path, revision: str | None = None, root: str | Path | None = None) -> Path:
    """The local folder of the checkpoint ``name``: a folder, or a Hugging Face Hub model repo id.

    A folder that exists (``root / name`` when a root is given) always wins, so a local checkpoint never
    goes to the network. Otherwise a ``str`` that reads ``OWNER/NAME[@REVISION]`` (or ``revision=``) is
    fetched with ``snapshot_download`` into the Hub cache, once: later calls find it there, and with
    ``HF_HUB_OFFLINE=1`` the cache is all that is read. A ``Path`` is always a path. What is neither comes
    back as given, for ``load_model`` to report as not found. A Hub failure is a CheckpointError that says
    which: no such repo, no such revision, or not cached while the Hub cannot be reached.
    """
    local = Path(root, name) if root is not None else Path(name)
    hub = HUB_ID.fullmatch(name) if isinstance(name, str) else None
    if local.exists() or hub is None:  # an existing file too: load_model says it is not a folder
        return local
    repo, pinned = hub["repo"], hub["revision"]
    if pinned and revision and pinned != revision:
        raise CheckpointError(f"{name} names revision {pinned!r} but {revision!r} was asked for")
    revision = pinned or revision
    # imported here: it costs a quarter of a second, which a local checkpoint (the app, every test) never needs
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    missing = f"checkpoint folder not found: {local}"
    where = repo + (f" at revision {revision!r}" if revision else "")
    try:
        return Path(snapshot_download(repo, revision=revision))
    except RevisionNotFoundError:
        raise CheckpointError(f"the Hugging Face Hub model repo {repo} has no revision {revision or 'main'!r} "
                              "(a branch, tag or commit)") from None
    except GatedRepoError:
        raise CheckpointError(f"{repo} is gated on the Hugging Face Hub: accept its terms on its page, then "
                              "log in (or set HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise CheckpointError(f"{missing}, nor is there a model repo {repo} on the Hugging Face Hub (a private "
                              "one needs a token: log in or set HF_TOKEN)") from None
    except LocalEntryNotFoundError as e:  # offline, or no connection, and not (completely) in the cache
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else _first_line(e.__cause__ or e)
        raise CheckpointError(f"{missing}, and the Hugging Face Hub model repo {where} is not in the cache "
                              f"({constants.HF_HUB_CACHE}) while the Hub cannot be reached: {why}") from None
    except (OSError, ValueError) as e:  # the Hub's other HTTP errors are OSErrors; a malformed id a ValueError
        raise CheckpointError(f"cannot fetch {where} from the Hugging Face Hub: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _aliases(model) -> dict[str, str]:
    """Tied weights (one tensor under several names, e.g. an output layer tied to an embedding): alias -> first name."""
    first: dict[int, str] = {}
    aliases = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        key = id(tensor)
        if key in first:
            aliases[name] = first[key]
        else:
            first[key] = name
    return aliases


def weights_of(model) -> dict[str, torch.Tensor]:
    """The state dict with each tied tensor stored once (safetensors refuses shared memory)."""
    aliases = _aliases(model)
    return {k: v for k, v in model.state_dict().items() if k not in aliases}


def load_weights(model, state: dict[str, torch.Tensor]) -> None:
    """Load what ``weights_of`` wrote; tied names are filled from the name they share a tensor with."""
    for alias, name in _aliases(model).items():
        if name in state:
            state.setdefault(alias, state[name])
    model.load_state_dict(state)


def save_model(folder: str | Path, model, tokenizer, metrics: dict | None = None, half: bool = False) -> None:
    """Write config.json, model.safetensors and tokenizer.json (the card is written separately)."""
    folder = Path(folder)
    state = weights_of(model)
    if half:  # shipping: half the bytes; the loader casts back to fp32
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    atomic_save_tensors(folder / "model.safetensors", state, metadata={"format": "pt"})
    tokenizer.save(folder)
    config = {"model_type": model.model_type, "config": asdict(model.config), "metrics": metrics or {}}
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2))


@dataclass
class CheckpointSpec:
    """What a training task's best checkpoint carries beside the model: the tokenizer that travels with it,
    fp16 or fp32 weights, and facts for config.json's metrics beside the measured ones (the data's sizes and
    splits). Data, not a callback: the library writes the checkpoint, and the training script writes the card
    once the run is over (``train.common.train_and_card``)."""

    tokenizer: Any
    half: bool = False
    facts: dict = field(default_factory=dict)

    def write(self, folder: str | Path, model, metrics: dict) -> None:
        save_model(folder, model, self.tokenizer, {**metrics, **self.facts}, half=self.half)


def read_config(folder: str | Path) -> dict:
    folder = Path(folder)
    if folder.is_file():
        raise CheckpointError(f"{folder} is a file; a checkpoint is a folder (config.json, model.safetensors and "
                              "the tokenizer's files)")
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {folder}")
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a checkpoint: it has no config.json")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is corrupt: {e}") from None
    if not isinstance(config, dict) or config.get("model_type") not in MODELS or not isinstance(config.get("config"), dict):
        raise CheckpointError(f"{path} does not describe a known model (model_type must be one of {', '.join(MODELS)})")
    return config


def load_tokenizer(folder: str | Path):
    """The tokenizer saved in a checkpoint folder (``tokenizer.json``, plus ``tokenizer.model`` for SentencePiece)."""
    folder = Path(folder)
    tok_path = folder / "tokenizer.json"
    try:
        return tokenizer_from_dict(json.loads(tok_path.read_text(encoding="utf-8")), folder)
    except FileNotFoundError as e:
        raise CheckpointError(f"{folder} has no {Path(e.filename or tok_path).name}") from None
    # SentencePiece reports a corrupt model file as a RuntimeError
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, KeyError, TypeError, RuntimeError, OSError) as e:
        raise CheckpointError(f"{tok_path} is corrupt: {e}") from None


def load_model(folder: str | Path, device: str | torch.device = "cpu"):
    """Rebuild (model, tokenizer, config dict) from a checkpoint folder or Hub repo id (``resolve_checkpoint``);
    the model is in eval mode, fp32."""
    folder = resolve_checkpoint(folder)
    config = read_config(folder)
    cls = MODELS[config["model_type"]]
    known = {f.name for f in fields(cls.config_class)}
    try:
        model_config = cls.config_class(**{k: v for k, v in config["config"].items() if k in known})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / 'config.json'} has an invalid model config: {e}") from None
    tokenizer = load_tokenizer(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{folder} has no model.safetensors")
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights} is corrupt or not a safetensors file: {e}") from None
    model = cls(model_config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        load_weights(model, state)
    except RuntimeError as e:
        raise CheckpointError(f"{weights} does not match config.json: {str(e).splitlines()[0]}") from None
    return model.to(device).eval(), tokenizer, config


def load_named(root: str | Path, names: dict[str, str],
               model_type: str | tuple[str, ...]) -> tuple[dict[str, tuple], list[str]]:
    """Load the checkpoints ``root/names[label]`` of one model type (or any of a tuple), for an app that may lack some.

    A name may be a Hub repo id instead (``OWNER/NAME[@REVISION]``), used when ``root`` has no such folder.
    Returns ({label: (folder, model, tokenizer, config)}, problems): a missing or broken checkpoint is a
    problem to show, not a crash.
    """
    loaded, problems = {}, []
    for label, name in names.items():
        try:
            folder = resolve_checkpoint(name, root=root)
            model, tokenizer, config = load_model(folder)
        except CheckpointError as e:
            problems.append(f"{label}: {e}")
            continue
        accepted = (model_type,) if isinstance(model_type, str) else model_type
        if config["model_type"] not in accepted:
            problems.append(f"{label}: {folder} holds a {config['model_type']} model, not a {accepted[0]} model")
            continue
        loaded[label] = (folder, model, tokenizer, config)
    return loaded, problems


def save_resume_state(folder: str | Path, model, state: dict) -> None:
    """Latest weights (safetensors) and optimizer/step/RNG state (tensors and plain containers only)."""
    folder = Path(folder)
    atomic_save_tensors(folder / "resume.safetensors", weights_of(model))
    atomic_torch_save(folder / "resume.pt", state)


def load_resume_state(folder: str | Path, model) -> dict:
    folder = Path(folder)
    pt, weights = folder / "resume.pt", folder / "resume.safetensors"
    if not pt.is_file() or not weights.is_file():
        raise CheckpointError(f"nothing to resume in {folder}: resume.pt and resume.safetensors are needed")
    try:
        # weights_only: only tensors and plain containers, so a crafted file cannot run code
        state = torch.load(pt, map_location="cpu", weights_only=True)
        load_weights(model, load_file(str(weights), device="cpu"))
    except Exception as e:  # unpickling errors come in many types; all mean the same to the user
        raise CheckpointError(f"cannot resume from {folder}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    return state
