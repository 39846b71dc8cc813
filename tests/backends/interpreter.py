"""Scripts run under Triton's interpreter, for the GPU kernels' tests.

The interpreter must be switched on (``TRITON_INTERPRET=1``) before Triton
builds a kernel, so the checks cannot run in pytest's own process. Starting
a fresh Python for each (torch, diffjpeg and Triton imported anew) costs two
seconds a test; instead one server process per test session imports them
once with the interpreter on and forks a child per script: each script gets
a fresh copy of that process (nothing one script changes reaches another)
for the price of a fork. A script's ``print`` output comes back; an
exception comes back as its traceback, and the test fails with it.
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SERVER = r"""
import contextlib, io, json, os, sys, traceback
import torch, diffjpeg
from diffjpeg.backends import gpu
for name in ("gpu_kernels", "gpu_encoder", "gpu_decoder", "gpu_stage_kernels"):
    gpu._kernels(name)  # Triton and every kernel module, once
for line in sys.stdin:
    script = json.loads(line)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child runs the script and reports through the pipe
        os.close(read)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(script, "<interpreted script>", "exec"), {"__name__": "__main__"})
            result = {"out": out.getvalue()}
        except BaseException:
            result = {"out": out.getvalue(), "error": traceback.format_exc()}
        with os.fdopen(write, "w") as pipe:
            pipe.write(json.dumps(result))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    print(data if data else json.dumps({"out": "", "error": f"the script's process ended with status {status}"}), flush=True)
"""

_server: subprocess.Popen | None = None
_lock = threading.Lock()


def _start() -> subprocess.Popen:
    global _server
    if _server is None or _server.poll() is not None:
        _server = subprocess.Popen(
            [sys.executable, "-c", _SERVER], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)},
        )
        atexit.register(_server.kill)
    return _server


def interpreted(script: str, timeout: float = 300.0) -> str:
    """What ``script`` (dedented) prints, run under Triton's interpreter in a
    fresh fork of the session's server; its exception fails the test."""
    with _lock:
        server = _start()
        server.stdin.write(json.dumps(textwrap.dedent(script)) + "\n")
        server.stdin.flush()
        answer: list[str] = []
        reader = threading.Thread(target=lambda: answer.append(server.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not answer or not answer[0]:
            server.kill()  # stuck or dead: the next script starts a new one
            raise AssertionError(f"no answer from the interpreter within {timeout:.0f} s")
    result = json.loads(answer[0])
    assert "error" not in result, result["error"][-3000:]
    return result["out"]
