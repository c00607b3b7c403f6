"""Start `python app.py` on a free loopback port and stop it after: shared by the benches and the tests."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]


class AppURL(str):
    """The running app's URL, which can also ``log()`` what the app has printed so far (its last 3,000 characters)."""

    log: Callable[[], str]


class AppStartError(RuntimeError):
    """app.py exited or did not answer in time; the message ends with the tail of its output."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(checkpoints: str | Path | None = None, start_timeout: float = 120,
                poll_s: float = 0.3, root: str | Path = ROOT, ready_line: str | None = None) -> Iterator[AppURL]:
    """Yield the URL of a running app (``root``'s app.py, on ``checkpoints`` if given) once it answers; terminate it after.

    With ``ready_line``, also wait (within ``start_timeout``) until a line of its log starts with it: work the app
    finishes after it answers, such as starting its generation workers. Its output goes to a temporary file, not a
    pipe: a pipe nobody reads fills up and stalls a busy app.
    """
    env = {**os.environ, "GRADIO_SERVER_PORT": str(free_port()), "GRADIO_ANALYTICS_ENABLED": "False"}
    if checkpoints is not None:
        env["RNN_PLAYGROUND_CHECKPOINTS"] = str(checkpoints)
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                text=True)

        def tail() -> str:
            log.seek(0)
            return log.read()[-3000:]

        try:
            deadline = time.time() + start_timeout
            while True:
                try:
                    urllib.request.urlopen(url, timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise AppStartError(f"app.py exited with code {proc.returncode}: {tail()}") from None
                    if time.time() > deadline:
                        raise AppStartError(f"app.py did not answer within {start_timeout:.0f} s: {tail()}") from None
                    time.sleep(poll_s)
            while ready_line is not None and not any(line.startswith(ready_line) for line in tail().splitlines()):
                if proc.poll() is not None:
                    raise AppStartError(f"app.py exited with code {proc.returncode}: {tail()}")
                if time.time() > deadline:
                    raise AppStartError(f"app.py did not log {ready_line!r} within {start_timeout:.0f} s: {tail()}")
                time.sleep(poll_s)
            url = AppURL(url)
            url.log = tail
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
