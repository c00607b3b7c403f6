"""Put RNN Playground on the Hugging Face Hub: the app as a Space, a trained checkpoint as a model repo.

    python -m train.hub deploy-space USER/NAME --dry-run   # what would go up, with sizes; fails on what the Hub refuses
    python -m train.hub deploy-space USER/NAME             # upload the app (log in first: `hf auth login`, or HF_TOKEN)
    python -m train.hub push --checkpoint runs/my-lstm --repo USER/NAME --dataset karpathy/tiny_shakespeare --license mit

Both upload through huggingface_hub, which stores binary files the Hub's way (LFS or Xet) whatever the local
git holds, so neither needs git-lfs. A Space gets the files git would commit (tracked, or new and not ignored)
less what only development needs: tests, benchmarks, training scripts and CI. A pushed model loads anywhere by
its repo id: `--checkpoint USER/NAME[@REVISION]` in every command, or an entry of the app's model lists.
"""
from __future__ import annotations

import argparse
import codecs
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from seqmodels.cards import hub_card
from seqmodels.checkpoint import HUB_ID, MODELS
from train.common import HelpFormatter, add_command, dispatch, fail, load_or_fail

ROOT = Path(__file__).resolve().parents[1]

# What only development needs: the Space runs app.py, which imports demos/ and seqmodels/ and reads checkpoints/.
SPACE_EXCLUDES = ("tests/", "bench/", "train/", ".ci/", "requirements-dev.txt")
# What a Space's README front matter may say (huggingface.co/docs/hub/spaces-config-reference); the Hub refuses
# a commit whose metadata breaks these rules
SPACE_SDKS = ("gradio", "docker", "static", "streamlit")
SPACE_COLOURS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
MAX_SHORT_DESCRIPTION = 60  # characters
MAX_FILE_BYTES = 50 * 10**9  # the Hub's limit for one file
LFS_BYTES = 10 * 10**6  # the Hub keeps no file over 10 MB as a plain git blob
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"  # what a checkout made without git-lfs holds instead
# license ids from the Hub's list (which is longer; "other" covers the rest)
LICENSES = ["apache-2.0", "mit", "bsd-3-clause", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "gpl-3.0",
            "other"]


# --------------------------------------------------------------------------- what goes up

def project_files(root: Path = ROOT) -> list[str]:
    """The files a commit of ``root`` would hold: tracked, or new and not ignored (never .venv/, runs/ or caches)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=root,
                                capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as e:
        fail(f"{root} is not a git checkout ({getattr(e, 'stderr', b'').decode().strip() or e}): the files that go up "
             "are the ones git would commit")
    return sorted(p for p in listed.split("\0") if p and (root / p).is_file())  # a deleted file is still listed


def space_files(root: Path = ROOT) -> list[str]:
    """What a Space of the app needs: the project's files less SPACE_EXCLUDES."""
    return [p for p in project_files(root) if not p.startswith(SPACE_EXCLUDES)]


def is_binary(path: Path) -> bool:
    """Binary as git judges it (a NUL byte in the first 8,000 bytes), or not UTF-8: what the Hub keeps out of plain git."""
    with open(path, "rb") as f:
        head = f.read(8000)
    if b"\0" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)  # not final: a character cut at 8,000 bytes is fine
    except UnicodeDecodeError:
        return True
    return False


def metadata_problems(meta: dict, files: list[str]) -> list[str]:
    """What the Hub refuses in a Space's README front matter (``meta``), given the ``files`` that go up with it."""
    problems = []
    sdk = meta.get("sdk")
    if sdk not in SPACE_SDKS:
        problems.append(f"README.md: sdk is {sdk!r}; a Space needs one of {', '.join(SPACE_SDKS)}")
    if sdk == "gradio" and not isinstance(meta.get("sdk_version"), str):
        problems.append("README.md: a Gradio Space needs sdk_version, the Gradio version to install, as a string")
    for key in ("colorFrom", "colorTo"):
        if key in meta and meta[key] not in SPACE_COLOURS:
            problems.append(f"README.md: {key} is {meta[key]!r}; it must be one of {', '.join(SPACE_COLOURS)}")
    version = meta.get("python_version")
    if version is not None and not (isinstance(version, str) and re.fullmatch(r"3\.\d+(\.\d+)?", version)):
        # unquoted, YAML reads 3.10 as the number 3.1
        problems.append(f"README.md: python_version is {version!r}; it must be a quoted \"3.x\" or \"3.x.x\"")
    if meta.get("app_file", "app.py") not in files:
        problems.append(f"README.md: app_file {meta.get('app_file', 'app.py')!r} is not among the files that go up")
    if len(str(meta.get("short_description", ""))) > MAX_SHORT_DESCRIPTION:
        problems.append(f"README.md: short_description is {len(meta['short_description'])} characters; the Hub "
                        f"takes at most {MAX_SHORT_DESCRIPTION}")
    return problems


def space_problems(root: Path, files: list[str]) -> list[str]:
    """What the Hub would refuse, or take and then fail to run: the README's Space metadata, files over the
    Hub's size limit, and Git LFS pointers standing in for files (a checkout made without git-lfs)."""
    from huggingface_hub import SpaceCard

    problems = []
    if "README.md" not in files:
        problems.append("README.md: missing; a Space is configured by its front matter")
    else:
        try:
            problems += metadata_problems(SpaceCard.load(root / "README.md").data.to_dict(), files)
        except (ValueError, yaml.YAMLError) as e:
            problems.append(f"README.md: its front matter is not valid YAML metadata: {str(e).splitlines()[0]}")
    for name in files:
        size = (root / name).stat().st_size
        if size > MAX_FILE_BYTES:
            problems.append(f"{name}: {human_size(size)}, over the Hub's {human_size(MAX_FILE_BYTES)} per file")
        elif size < 1024 and (root / name).read_bytes().startswith(LFS_POINTER):
            problems.append(f"{name}: a Git LFS pointer, not the file (fetch the files with `git lfs pull`)")
    return problems


def model_files(folder: Path) -> list[str]:
    """The files of a checkpoint folder that a model repo gets: all but the resume state (training's own, and the
    largest), hidden and temporary files, and README.md, which the Hub card replaces."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not p.name.startswith((".", "resume.")) and p.suffix != ".tmp"
                  and p.relative_to(folder).as_posix() != "README.md")


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def list_files(root: Path, files: list[str]) -> dict:
    """Print each file with its size and kind; return the totals (the JSON summary's figures)."""
    total = binary = large = 0
    for name in files:
        size, is_bin = (root / name).stat().st_size, is_binary(root / name)
        total, binary, large = total + size, binary + is_bin, large + (size > LFS_BYTES)
        print(f"{human_size(size):>9}  {'binary' if is_bin else 'text  '}  {name}")
    return {"files": len(files), "bytes": total, "binary_files": binary, "files_over_10mb": large}


# --------------------------------------------------------------------------- upload

def deploy_space(api, space_id: str, root: Path, files: list[str], private: bool = False) -> str:
    """Make the Space ``space_id`` hold exactly ``files`` of ``root``, in one commit; return its URL."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    # a file the Space has and the project no longer does would linger; the Space's own .gitattributes stays,
    # so that a git push to it still routes binaries to LFS
    stale = set(api.list_repo_files(space_id, repo_type="space")) - set(files) - {".gitattributes"}
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(root / name)) for name in files]
    operations += [CommitOperationDelete(path_in_repo=name) for name in sorted(stale)]
    api.create_commit(space_id, repo_type="space", operations=operations,
                      commit_message=f"Deploy RNN Playground ({git_version(root)})")
    return f"https://huggingface.co/spaces/{space_id}"


def push_model(api, repo_id: str, folder: Path, files: list[str], card: str, private: bool = False) -> str:
    """Upload ``files`` of the checkpoint ``folder`` and ``card`` as README.md to the model repo ``repo_id``."""
    from huggingface_hub import CommitOperationAdd

    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in files]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8")))
    api.create_commit(repo_id, repo_type="model", operations=operations,
                      commit_message=f"Upload {folder.name} from RNN Playground")
    return f"https://huggingface.co/{repo_id}"


def git_version(root: Path) -> str:
    r = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True, text=True)
    return r.stdout.strip() or "not a git checkout"


def on_the_hub(action: str, upload, *args, **kw) -> str:
    """``upload(*args, **kw)``, or an exit that says why the Hub did not take it."""
    try:
        return upload(*args, **kw)
    except Exception as e:  # HTTP, connection, token and offline errors come in many types; all mean the same here
        text = str(e).strip().splitlines()
        fail(f"could not {action}: {type(e).__name__}: {text[0] if text else ''} (check the connection; log in with "
             "`hf auth login` or set HF_TOKEN; HF_HUB_OFFLINE must be unset)")


def repo_id_or_fail(text: str, what: str) -> str:
    match = HUB_ID.fullmatch(text)
    if not match or match["revision"]:
        fail(f"{what} must be a Hub repo id, USER/NAME; got {text!r}")
    return text


# --------------------------------------------------------------------------- commands

def cmd_deploy_space(args) -> None:
    from huggingface_hub import HfApi

    space_id, root = repo_id_or_fail(args.space, "the Space"), Path(args.folder)
    files = space_files(root)
    summary = {"space": space_id, **list_files(root, files)}
    problems = space_problems(root, files)
    print(f"{'would upload' if args.dry_run else 'uploading'} {summary['files']} files, {human_size(summary['bytes'])} "
          f"({summary['binary_files']} binary, {summary['files_over_10mb']} over 10 MB: the Hub stores them in LFS/Xet) "
          f"to https://huggingface.co/spaces/{space_id}; left out: {', '.join(SPACE_EXCLUDES)}", file=sys.stderr)
    for problem in problems:
        print(f"refused: {problem}", file=sys.stderr)
    print(json.dumps({**summary, "refused": len(problems), "dry_run": args.dry_run}))
    if problems:
        fail(f"{len(problems)} thing(s) above the Hub would refuse or could not run; nothing was uploaded")
    if not args.dry_run:
        print(on_the_hub(f"deploy the Space {space_id}", deploy_space, HfApi(), space_id, root, files, args.private))


def cmd_push(args) -> None:
    from huggingface_hub import HfApi, ModelCard

    folder, repo_id = Path(args.checkpoint), repo_id_or_fail(args.repo, "--repo")
    if not folder.is_dir():
        fail(f"--checkpoint must be the local folder to push; {folder} is not a folder")
    _, _, config = load_or_fail(folder, tuple(MODELS))  # never push a checkpoint that does not load
    card_path = folder / "README.md"
    text = card_path.read_text(encoding="utf-8") if card_path.is_file() else f"# {folder.name}\n"
    try:
        existing = ModelCard(text).data
    except (ValueError, yaml.YAMLError) as e:
        fail(f"{card_path}: its front matter is not valid YAML metadata: {str(e).splitlines()[0]}")
    datasets, license = args.dataset or existing.datasets, args.license or existing.license
    datasets = [datasets] if isinstance(datasets, str) else list(datasets or [])  # a card may name one, or none
    if not datasets:
        print("note: no --dataset, so the card gets no evaluation results (the Hub ties them to a Hub dataset id, as "
              "--dataset karpathy/tiny_shakespeare); its text keeps the figures", file=sys.stderr)
    if not license:
        fail(f"say the weights' license with --license ({', '.join(LICENSES)})")
    card = hub_card(text, config, datasets, license, repo_id.split("/")[1])
    files = model_files(folder)
    summary = list_files(folder, files)
    print(f"{'would upload' if args.dry_run else 'uploading'} {summary['files']} files and README.md "
          f"({human_size(summary['bytes'])}) to https://huggingface.co/{repo_id}; the card's metadata:", file=sys.stderr)
    print(card.split("\n---\n", 1)[0] + "\n---", file=sys.stderr)
    if not args.dry_run:
        print(on_the_hub(f"push to {repo_id}", push_model, HfApi(), repo_id, folder, files, card, args.private))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.hub", description=__doc__, formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = add_command(sub, "deploy-space", "upload the app to a Hugging Face Space (created if it does not exist)")
    d.add_argument("space", metavar="USER/NAME", help="the Space's id")
    d.add_argument("--dry-run", action="store_true",
                   help="list what would go up, with sizes, and check it for what the Hub would refuse; upload nothing")
    d.add_argument("--private", action="store_true", help="create the Space private")
    d.add_argument("--folder", default=str(ROOT), help="the project checkout to upload")
    d.set_defaults(func=cmd_deploy_space)
    s = add_command(sub, "push", "upload a trained checkpoint folder as a model repo with a Hub model card")
    s.add_argument("--checkpoint", required=True, help="the model folder to push (a training command's --out)")
    s.add_argument("--repo", required=True, metavar="USER/NAME", help="the model repo's id (created if it does not exist)")
    s.add_argument("--dataset", action="append", metavar="ID",
                   help="a Hub dataset it was trained on (repeatable; its validation figures are reported against the "
                        "first); default: the card's; with none (a model trained on a local file) the card has no "
                        "evaluation results")
    s.add_argument("--license", choices=LICENSES, help="the weights' license; default: the card's")
    s.add_argument("--private", action="store_true", help="create the repo private")
    s.add_argument("--dry-run", action="store_true", help="list the files and show the card's metadata; upload nothing")
    s.set_defaults(func=cmd_push)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    dispatch(args)


if __name__ == "__main__":
    main()
