"""Hosting on the Hugging Face Hub, with no network: binaries through Git LFS, checkpoints by Hub repo id (from a
Hub cache laid out as huggingface_hub lays it out, read offline), `train.hub push`'s model card, and
`train.hub deploy-space`'s file list and refusals."""
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, constants, scan_cache_dir, snapshot_download, try_to_load_from_cache
from huggingface_hub.file_download import repo_folder_name

from seqmodels import CheckpointError, load_model, save_model
from seqmodels.charmodels import CHAR_MODEL_TYPES
from seqmodels.checkpoint import load_named
from train.hub import (LFS_BYTES, LFS_POINTER, deploy_space, is_binary, model_files, project_files, push_model,
                       space_files)

from conftest import ROOT, TINY_TEXT, make_model, running_app

REPO = "rnn-playground-tests/tiny-lstm"  # a name nobody has on the Hub: these tests never reach it anyway


def cli(module: str, *args, **env) -> subprocess.CompletedProcess:
    """``python -m module ARGS`` from the project root, one thread, with ``env`` added to the environment."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **{k: str(v) for k, v in env.items()}}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


# --------------------------------------------------------------------------- Git LFS

def git(*args, cwd, env) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def has_git_lfs() -> bool:
    return shutil.which("git") is not None and subprocess.run(["git", "lfs", "version"],
                                                              capture_output=True).returncode == 0


def test_every_binary_file_of_the_project_is_routed_to_lfs_in_the_hubs_form(tmp_path):
    lines = [s for s in (ROOT / ".gitattributes").read_text().splitlines() if s and not s.startswith("#")]
    assert all(s.split(" ", 1)[1] == "filter=lfs diff=lfs merge=lfs -text" for s in lines)
    assert {"*.safetensors filter=lfs diff=lfs merge=lfs -text", "*tfevents* filter=lfs diff=lfs merge=lfs -text",
            "*.png filter=lfs diff=lfs merge=lfs -text"} <= set(lines)
    binaries = [f for f in project_files(ROOT) if is_binary(ROOT / f)]
    # and what the project makes: resume state, zipped downloads, datasets saved to disk, photos to caption
    made = ["runs/x/resume.pt", "runs/x/model.safetensors", "runs/x/tokenizer.model", "model.zip", "data/train.arrow",
            "data/train.parquet", "photo.jpeg", "photo.webp", "figure.png"]
    assert {"checkpoints/charlm-lstm/model.safetensors", "checkpoints/translate-en-fr/tokenizer.model",
            "docs/gradient_flow.png"} <= set(binaries)
    # asked of a repository holding only this .gitattributes: the project's own working copy may override it in
    # .git/info/attributes (see test_the_projects_own_commits_hold_binaries_not_lfs_pointers)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy2(ROOT / ".gitattributes", tmp_path / ".gitattributes")
    attrs = subprocess.run(["git", "check-attr", "filter", "--", *binaries, *made], cwd=tmp_path, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    assert [line.rsplit(": ", 1)[1] for line in attrs] == ["lfs"] * (len(binaries) + len(made)), attrs
    assert not any(f for f in project_files(ROOT) if (ROOT / f).stat().st_size > LFS_BYTES and f not in binaries)


@pytest.mark.skipif(not (ROOT / ".git").is_dir(), reason="not a git checkout")
def test_the_projects_own_commits_hold_binaries_not_lfs_pointers():
    """The project's history travels as plain git packs, which carry no LFS objects: a weight file committed as a
    pointer would reach a clone as 130 bytes of text. Its working copy commits binaries as blobs (README, "Host it
    on Spaces"); the Hub gets them through `train.hub deploy-space` or a fresh history pushed with LFS."""
    tree = git("ls-tree", "-r", "-l", "HEAD", cwd=ROOT, env=os.environ).splitlines()  # MODE TYPE HASH SIZE<TAB>PATH
    small = [line.split("\t", 1)[1] for line in tree if line.split(None, 4)[3] != "-" and int(line.split(None, 4)[3]) < 200]
    pointers = [path for path in small
                if git("cat-file", "-p", f"HEAD:{path}", cwd=ROOT, env=os.environ).encode().startswith(LFS_POINTER)]
    assert not pointers, f"committed as LFS pointers: {pointers}"


@pytest.mark.skipif(not has_git_lfs(), reason="git-lfs is not installed (Debian: apt-get install git-lfs; .ci/run does)")
def test_a_clean_copy_pushed_with_git_lfs_clones_with_binaries_as_lfs_objects_and_its_app_starts(tmp_path):
    home, work, remote, clone = (tmp_path / name for name in ("home", "work", "remote.git", "clone"))
    home.mkdir()
    # a HOME of its own: `git lfs install` configures the filters there, never in the committer's ~/.gitconfig
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
           "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "test",
           "GIT_COMMITTER_EMAIL": "test@example.com"}
    git("lfs", "install", cwd=home, env=env)
    files = project_files(ROOT)  # what a commit would hold: never .venv/, runs/ or caches
    for name in files:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, work / name)
    git("init", "-q", "-b", "main", cwd=work, env=env)
    git("add", "-A", cwd=work, env=env)
    git("commit", "-q", "-m", "RNN Playground", cwd=work, env=env)
    git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp_path, env=env)
    git("push", "-q", remote.as_uri(), "main", cwd=work, env=env)  # file:// : LFS's standalone transfer, no server
    git("clone", "-q", remote.as_uri(), str(clone), cwd=tmp_path, env=env)

    binaries = {name for name in files if is_binary(work / name)}
    assert len(binaries) >= 15 and binaries <= set(git("lfs", "ls-files", "-n", cwd=clone, env=env).splitlines())
    # in the remote's git tree: every binary is a pointer, and no file is a blob over 10 MB
    tree = git("ls-tree", "-r", "-l", "main", cwd=remote, env=env).splitlines()  # MODE TYPE HASH SIZE<TAB>PATH
    blob_sizes = {path: int(size) for size, path in (line.split(None, 3)[3].split("\t") for line in tree)}
    assert set(blob_sizes) == set(files) and max(blob_sizes.values()) <= LFS_BYTES
    assert all(blob_sizes[path] < 200 for path in binaries)
    pointer = git("show", "main:checkpoints/charlm-lstm/model.safetensors", cwd=remote, env=env)
    assert pointer.encode().startswith(LFS_POINTER)
    # the clone holds the files themselves, not pointers
    assert all((clone / name).read_bytes() == (work / name).read_bytes() for name in files)

    from gradio_client import Client
    with running_app(root=clone, start_timeout=240) as url:
        _, text, _ = Client(url, verbose=False).predict("ROMEO:", "LSTM", 0.8, 0, 1.0, 20, 1, False,
                                                        api_name="/generate")
    assert text.startswith("ROMEO:") and len(text) == 26


# --------------------------------------------------------------------------- checkpoints by Hub repo id

def put_in_hub_cache(cache: Path, repo_id: str, folder: Path, refs: list[str]) -> str:
    """Lay ``folder`` out in the Hub cache ``cache`` as snapshot_download leaves a download of it: each file once in
    blobs/, named by its Hub ETag (an LFS file's sha256, a git blob's sha1), a snapshots/COMMIT/ of relative
    symlinks to them, and refs/NAME holding COMMIT for each name in ``refs``. Returns COMMIT."""
    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    commit = hashlib.sha1(b"".join(p.read_bytes() for p in files)).hexdigest()
    for path in files:
        data = path.read_bytes()
        etag = (hashlib.sha256(data) if is_binary(path) else hashlib.sha1(b"blob %d\0" % len(data) + data)).hexdigest()
        blob = storage / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = storage / "snapshots" / commit / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (storage / "refs" / ref).write_text(commit)
    return commit


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, tokenizer_module):
    """A Hub cache holding REPO at two commits: "v1" (a model of seed 1) and "main" (seed 2), the local
    folders they were made from, and the commits: (cache, {"v1": folder, "main": folder}, {"v1": commit, ...})."""
    root = tmp_path_factory.mktemp("hub")
    folders, commits = {}, {}
    for seed, ref in [(1, "v1"), (2, "main")]:
        folders[ref] = root / "local" / ref
        save_model(folders[ref], make_model(tokenizer_module, seed=seed), tokenizer_module, {"val_loss": 2.0 + seed})
        (folders[ref] / "README.md").write_text(f"---\nlibrary_name: pytorch\n---\n# Tiny LSTM, seed {seed}\n")
        commits[ref] = put_in_hub_cache(root / "cache", REPO, folders[ref], [ref])
    return root / "cache", folders, commits


@pytest.fixture(scope="module")
def tokenizer_module():
    from seqmodels import CharTokenizer
    return CharTokenizer.from_text(TINY_TEXT)


@pytest.fixture
def offline(hub_cache, monkeypatch):
    """This process reads the Hub cache ``hub_cache`` only, as HF_HUB_OFFLINE=1 would make it."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache[0]))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub_cache


def same_weights(a, b) -> bool:
    return all((x == y).all() for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_the_cache_the_tests_lay_out_is_one_huggingface_hub_reads_as_its_own(hub_cache):
    cache, folders, commits = hub_cache
    info = scan_cache_dir(cache)
    assert not info.warnings and [r.repo_id for r in info.repos] == [REPO]
    [repo] = info.repos
    assert repo.repo_type == "model" and set(repo.refs) == {"main", "v1"}
    for revision in repo.revisions:
        ref = next(iter(revision.refs))
        assert revision.commit_hash == commits[ref]
        assert {f.file_name for f in revision.files} == {p.name for p in folders[ref].iterdir()}
    assert try_to_load_from_cache(REPO, "config.json", cache_dir=cache, revision="v1") == \
        str(cache / repo_folder_name(repo_id=REPO, repo_type="model") / "snapshots" / commits["v1"] / "config.json")
    assert snapshot_download(REPO, cache_dir=cache, local_files_only=True).endswith(commits["main"])


def test_a_hub_id_loads_offline_from_the_cache_at_the_revision_asked_for(offline):
    _, folders, commits = offline
    for name, ref in [(REPO, "main"), (f"{REPO}@v1", "v1"), (f"{REPO}@{commits['v1']}", "v1"), (f"{REPO}@main", "main")]:
        model, _, config = load_model(name)
        local, _, local_config = load_model(folders[ref])
        assert same_weights(model, local) and config["metrics"] == local_config["metrics"], name


def test_the_cli_loads_a_hub_id_under_hf_hub_offline_and_writes_what_the_folder_would(hub_cache):
    cache, folders, _ = hub_cache
    args = ["sample", "--prompt", "ANNA:", "--max-new-tokens", "20", "--seed", "3"]
    by_id = cli("train.charlm", *args, "--checkpoint", f"{REPO}@v1", HF_HUB_CACHE=cache, HF_HUB_OFFLINE=1)
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout == cli("train.charlm", *args, "--checkpoint", folders["v1"]).stdout


@pytest.mark.parametrize("name, message", [
    ("rnn-playground-tests/nothing", "rnn-playground-tests/nothing is not in the cache"),
    (f"{REPO}@v9", f"{REPO} at revision 'v9' is not in the cache"),
])
def test_an_unknown_id_or_revision_offline_is_one_clear_message(hub_cache, name, message):
    r = cli("train.charlm", "sample", "--checkpoint", name, HF_HUB_CACHE=hub_cache[0], HF_HUB_OFFLINE=1)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"error: checkpoint folder not found: {name}") and message in r.stderr
    assert "HF_HUB_OFFLINE is set" in r.stderr


@contextlib.contextmanager
def hub_without(repo_with_no_such_revision: str):
    """A stand-in for the Hub's API that answers what the Hub answers for what it lacks: 404 with X-Error-Code
    RevisionNotFound for ``repo_with_no_such_revision``, RepoNotFound for any other repo."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            known = self.path.startswith(f"/api/models/{repo_with_no_such_revision}/")
            self.send_response(404)
            self.send_header("X-Error-Code", "RevisionNotFound" if known else "RepoNotFound")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": "not found"}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("name, message", [
    ("rnn-playground-tests/nothing", "nor is there a model repo rnn-playground-tests/nothing on the Hugging Face Hub"),
    (f"{REPO}@v9", f"the Hugging Face Hub model repo {REPO} has no revision 'v9'"),
])
def test_the_hubs_not_found_answers_become_one_clear_message(tmp_path, monkeypatch, name, message):
    with hub_without(REPO) as endpoint:
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
        with pytest.raises(CheckpointError, match=message):
            load_model(name)


def test_the_apps_model_list_takes_hub_ids_and_a_local_folder_of_that_name_wins(offline, tmp_path, tokenizer_module):
    _, folders, _ = offline
    names = {"Hub": REPO, "Pinned": f"{REPO}@v1", "Missing": "rnn-playground-tests/nothing", "Local": "charlm-lstm"}
    save_model(tmp_path / "charlm-lstm", make_model(tokenizer_module, seed=5), tokenizer_module)
    loaded, problems = load_named(tmp_path, names, CHAR_MODEL_TYPES)
    assert set(loaded) == {"Hub", "Pinned", "Local"} and len(problems) == 1 and problems[0].startswith("Missing: ")
    assert same_weights(loaded["Pinned"][1], load_model(folders["v1"])[0])
    save_model(tmp_path / REPO, make_model(tokenizer_module, seed=7), tokenizer_module)  # root/OWNER/NAME now exists
    local, _ = load_named(tmp_path, {"Hub": REPO}, CHAR_MODEL_TYPES)
    assert local["Hub"][0] == tmp_path / REPO and same_weights(local["Hub"][1], load_model(tmp_path / REPO)[0])


def test_evaluate_record_refuses_a_hub_id_with_a_clear_message(offline, tmp_path, capsys):
    from train.charlm import main

    (tmp_path / "t.txt").write_text(TINY_TEXT)
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--checkpoint", REPO, "--text", str(tmp_path / "t.txt"), "--record"])
    assert exit_.value.code == 2 and "--record writes into the checkpoint's model card" in capsys.readouterr().err
    assert not (Path.cwd() / REPO).exists()


# --------------------------------------------------------------------------- train.hub push

class FakeHub:
    """Records what train.hub asks of HfApi; the Space it serves already holds ``remote`` files."""

    def __init__(self, remote=()):
        self.calls, self.remote = [], list(remote)

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def list_repo_files(self, repo_id, **kw):
        return self.remote

    def create_commit(self, repo_id, operations, **kw):
        self.calls.append(("create_commit", repo_id, kw))
        self.operations = operations


def test_push_uploads_the_checkpoint_with_a_card_the_hubs_parser_reads(hub_cache, tmp_path):
    folder = shutil.copytree(hub_cache[1]["v1"], tmp_path / "run")
    (folder / "metrics.jsonl").write_text('{"step": 1, "loss": 3.0}\n')
    (folder / "resume.pt").write_bytes(b"training state")
    r = cli("train.hub", "push", "--checkpoint", folder, "--repo", REPO, "--dataset", "karpathy/tiny_shakespeare",
            "--license", "mit", "--dry-run")
    assert r.returncode == 0, r.stderr
    card = ModelCard(r.stderr.split("the card's metadata:\n", 1)[1]).data
    assert card.library_name == "pytorch" and "rnn-playground" in card.tags and card.license == "mit"
    assert card.datasets == ["karpathy/tiny_shakespeare"] and card.metrics == ["loss"]
    [result] = card.eval_results
    assert (result.metric_value, result.dataset_type, result.dataset_split) == \
        (3.0, "karpathy/tiny_shakespeare", "validation")

    from seqmodels.cards import hub_card
    hub = FakeHub()
    text = hub_card((folder / "README.md").read_text(), load_model(folder)[2], ["karpathy/tiny_shakespeare"], "mit",
                    "tiny")
    push_model(hub, REPO, folder, model_files(folder), text)
    assert hub.calls[0] == ("create_repo", REPO, {"repo_type": "model", "private": False, "exist_ok": True})
    uploaded = {op.path_in_repo: op for op in hub.operations}
    assert set(uploaded) == {"config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl", "README.md"}
    assert ModelCard(uploaded["README.md"].path_or_fileobj.decode()).data.eval_results[0].metric_value == 3.0


def test_a_model_trained_on_a_local_file_pushes_without_a_dataset_and_without_evaluation_results(hub_cache, tmp_path):
    folder = shutil.copytree(hub_cache[1]["v1"], tmp_path / "run")
    r = cli("train.hub", "push", "--checkpoint", folder, "--repo", REPO, "--license", "mit", "--dry-run")
    assert r.returncode == 0 and "no --dataset" in r.stderr, r.stderr
    card = ModelCard(r.stderr.split("the card's metadata:\n", 1)[1]).data
    assert card.license == "mit" and not card.datasets and not card.eval_results


def test_every_shipped_model_card_names_its_license_and_push_carries_it():
    from train.hub import LICENSES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    licences = readme[readme.index("\nLicences:\n"):]
    for card_path in sorted((ROOT / "checkpoints").glob("*/README.md")):
        card = ModelCard(card_path.read_text(encoding="utf-8"))
        assert card.data.license in LICENSES, card_path
        assert card.data.license != "other" or card.data.license_name, card_path  # "other" says which terms
        assert "\n## Licence\n" in card.text, card_path
        assert f"`checkpoints/{card_path.parent.name.split('-')[0]}-" in licences, card_path  # the README says it too
    r = cli("train.hub", "push", "--checkpoint", ROOT / "checkpoints" / "charlm-rnn", "--repo", REPO, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert ModelCard(r.stderr.split("the card's metadata:\n", 1)[1]).data.license == "mit"  # no --license needed


def test_push_says_why_when_the_hub_cannot_be_reached_or_the_card_lacks_a_license(hub_cache):
    folder = hub_cache[1]["v1"]
    r = cli("train.hub", "push", "--checkpoint", folder, "--repo", REPO, "--dataset", "karpathy/tiny_shakespeare",
            "--license", "mit", HF_HUB_OFFLINE=1)
    assert r.returncode == 2 and "error: could not push to" in r.stderr and "Traceback" not in r.stderr
    r = cli("train.hub", "push", "--checkpoint", folder, "--repo", REPO, "--dataset", "karpathy/tiny_shakespeare")
    assert r.returncode == 2 and "--license" in r.stderr and "Traceback" not in r.stderr


# --------------------------------------------------------------------------- train.hub deploy-space

def test_deploy_space_dry_run_lists_the_app_with_sizes_and_nothing_the_hub_would_refuse():
    r = cli("train.hub", "deploy-space", "rnn-playground-tests/space", "--dry-run")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])
    files = space_files(ROOT)
    assert summary["refused"] == 0 and summary["files"] == len(files)
    assert summary["bytes"] == sum((ROOT / f).stat().st_size for f in files)
    listed = [line.split()[-1] for line in r.stdout.splitlines()[:-1]]
    assert listed == files
    assert {"app.py", "requirements.txt", "README.md", "checkpoints/charlm-lstm/model.safetensors"} <= set(files)
    assert not [f for f in files if f.startswith(("tests/", "bench/", "train/", ".venv/", "runs/"))]


def test_deploy_space_dry_run_fails_on_what_the_hub_would_refuse(tmp_path):
    (tmp_path / "README.md").write_text("---\ntitle: x\nsdk: gradio\nsdk_version: 6.31.0\npython_version: 3.10\n"
                                        "colorFrom: teal\ncolorTo: green\napp_file: main.py\n"
                                        f"short_description: {'a' * 61}\n---\n# x\n")
    (tmp_path / "model.safetensors").write_text(f"{LFS_POINTER.decode()}\noid sha256:{'0' * 64}\nsize 123\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    r = cli("train.hub", "deploy-space", "rnn-playground-tests/space", "--dry-run", "--folder", tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["refused"] == 5
    for message in ["colorFrom is 'teal'", "python_version is 3.1;", "app_file 'main.py'", "short_description is 61",
                    "model.safetensors: a Git LFS pointer"]:
        assert message in r.stderr, message


def test_deploy_space_uploads_exactly_the_listed_files_and_deletes_what_the_project_no_longer_has():
    files = space_files(ROOT)
    hub = FakeHub(remote=[".gitattributes", "app.py", "old_tab.py"])
    url = deploy_space(hub, "rnn-playground-tests/space", ROOT, files)
    assert url == "https://huggingface.co/spaces/rnn-playground-tests/space"
    assert hub.calls[0] == ("create_repo", "rnn-playground-tests/space",
                            {"repo_type": "space", "space_sdk": "gradio", "private": False, "exist_ok": True})
    added = [op.path_in_repo for op in hub.operations if hasattr(op, "path_or_fileobj")]
    deleted = [op.path_in_repo for op in hub.operations if not hasattr(op, "path_or_fileobj")]
    assert added == files and deleted == ["old_tab.py"]
