"""The texts the Train tab learns from: Tiny Shakespeare, Python code and names by name, or a person's upload.

Each is redistributable and reaches a fresh machine without a data set in the repository:

- *Tiny Shakespeare* (public domain): ``$RNN_PLAYGROUND_DATA/tinyshakespeare.txt``, then the project's
  ``../shared/data``, then the download cache ``~/.cache/rnn-playground/``; failing those, downloaded once
  from Karpathy's char-rnn repository into that cache;
- *Python code* (PSF licence): modules of the running Python's own standard library;
- *Names* (public domain): ``demos/assets/corpora/names.txt``, from the 1990 US Census name files. Rebuilt with::

      first = [l.split()[0] for f in ("dist.female.first", "dist.male.first") for l in open(f) if l.strip()]
      last = [l.split()[0] for l in open("dist.all.last") if l.strip()][:20000]
      names = sorted({n.lower() for n in first + last}); random.Random(0).shuffle(names)
"""
from __future__ import annotations

import logging
import os
import re
import sysconfig
import threading
import urllib.request
from pathlib import Path

from seqmodels.live import MAX_TEXT_CHARS

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnn-playground"
MAX_UPLOAD_BYTES = 2_000_000  # read at most this much of an upload; over MAX_TEXT_CHARS characters is refused
SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
PYTHON_MODULES = ["textwrap.py", "string.py", "fractions.py", "heapq.py", "bisect.py", "shlex.py", "calendar.py",
                  "statistics.py", "difflib.py", "pprint.py", "colorsys.py", "queue.py", "dataclasses.py", "argparse.py",
                  "random.py", "functools.py", "contextlib.py", "abc.py", "base64.py", "csv.py"]
# name -> (one line for the page, the prompt every sample starts from)
CORPORA = {
    "Tiny Shakespeare": ("1.1 million characters of his plays", "\n"),
    "Python code": ("400,000 characters of its standard library", "def "),
    "Names": ("24,003 lower-case US names, 1990 census", "\n"),
}


_download_failed = False  # set when a download of Tiny Shakespeare fails: the page then says it cannot be had here


class CorpusError(Exception):
    """A corpus that cannot be had here; the message says what to do."""


def _local_shakespeare() -> Path | None:
    places = [Path(os.environ["RNN_PLAYGROUND_DATA"]) / "tinyshakespeare.txt"] if "RNN_PLAYGROUND_DATA" in os.environ else []
    places += [ROOT.parent / "shared" / "data" / "tinyshakespeare.txt", CACHE / "tinyshakespeare.txt"]
    return next((path for path in places if path.is_file()), None)


def shakespeare_at_hand() -> bool:
    """Whether Tiny Shakespeare can be read without a download."""
    return _local_shakespeare() is not None


def corpus_summary() -> str:
    """One line for the page: each corpus and what it holds; Tiny Shakespeare says when it must be downloaded, and
    when the download has failed (offline, a newcomer read "to download", picked it and met the failure only after
    pressing Train)."""
    missing = " (could not be downloaded on this server: pick another)" if _download_failed else " (to download)"
    notes = {"Tiny Shakespeare": "" if _local_shakespeare() else missing}
    return " · ".join(f"{name}: {about}{notes.get(name, '')}" for name, (about, _) in CORPORA.items())


def default_corpus() -> str:
    """The corpus a page opens on: Tiny Shakespeare where a copy is at hand, else Python code, which needs no
    download (offline, a newcomer's first press of Train on the default failed)."""
    return "Tiny Shakespeare" if _local_shakespeare() else "Python code"


def fetch_shakespeare_in_background() -> None:
    """On a host with the internet (a Space), download Tiny Shakespeare at start-up, so pages opened afterwards
    default to it; offline the failure goes to the log, and the pages default to Python code."""
    def fetch():
        try:
            _shakespeare()
        except CorpusError:
            pass  # _shakespeare has logged what the host can do

    if _local_shakespeare() is None:
        threading.Thread(target=fetch, name="fetch-shakespeare", daemon=True).start()


def _shakespeare() -> str:
    global _download_failed
    local = _local_shakespeare()
    if local is not None:
        return local.read_text(encoding="utf-8")
    try:  # a Space or a laptop with the internet: fetch once, keep it in the cache
        with urllib.request.urlopen(SHAKESPEARE_URL, timeout=20) as response:
            text = response.read().decode("utf-8")
    except OSError as e:
        _download_failed = True
        reason = getattr(e, "reason", None) or e  # a URLError prints as <urlopen error ...>, which a page reads as a tag
        reason = re.sub(r"^\[Errno -?\d+\] ", "", getattr(reason, "strerror", None) or str(reason))
        # the page says what a learner can do; the host's fix goes to the server's log (newcomers read a raw
        # errno, then server paths and environment variables, as if they were theirs to deal with)
        logging.getLogger("rnn_playground").warning(
            "Tiny Shakespeare could not be downloaded (%s): put tinyshakespeare.txt in %s, or set RNN_PLAYGROUND_DATA "
            "to the folder that holds it", reason, CACHE)
        raise CorpusError(f"Tiny Shakespeare (1 MB) is downloaded on first use, and it could not be downloaded: no internet connection? ({reason}). "
                          "Pick Python code or Names, which need no download, or paste your own text.") from None
    _download_failed = False
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / "tinyshakespeare.txt.part"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(CACHE / "tinyshakespeare.txt")
    return text


def _python_code(limit: int = 400_000) -> str:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts = [(stdlib / name).read_text(encoding="utf-8") for name in PYTHON_MODULES if (stdlib / name).is_file()]
    if not parts:
        raise CorpusError(f"no standard-library modules were found in {stdlib}")
    return "\n\n".join(parts)[:limit]


def read_upload(path: str | None) -> str:
    """The text of a person's uploaded file; a CorpusError for no file, a file too big, binary or not UTF-8."""
    if not path:
        raise CorpusError("no file uploaded: choose a .txt file, or paste the text instead")
    size = Path(path).stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise CorpusError(f"the file is {size:,} bytes; the limit is {MAX_UPLOAD_BYTES:,} bytes ({MAX_TEXT_CHARS:,} "
                          "characters)")
    data = Path(path).read_bytes()
    if b"\x00" in data:
        raise CorpusError("this looks like a binary file, not text: upload a plain .txt file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"the file is not UTF-8 text (byte {e.start:,} cannot be read); save it as UTF-8 and try "
                          "again") from None


def load_corpus(name: str) -> str:
    """The text of a built-in corpus, by name; a CorpusError when it cannot be had."""
    if name == "Tiny Shakespeare":
        return _shakespeare()
    if name == "Python code":
        return _python_code()
    if name == "Names":
        return (ROOT / "demos" / "assets" / "corpora" / "names.txt").read_text(encoding="utf-8")
    raise CorpusError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
