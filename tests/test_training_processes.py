"""The training engine across processes: SIGKILL then --resume, and DDP under torchrun.

Each test runs ``chainrule train`` in subprocesses on a small generated corpus, exactly as a
user would, and compares the summaries that ``--json`` prints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # several subprocesses each: tests/conftest.py starts these first

TINY = ["n_layer=1", "n_head=2", "n_embd=16", "block_size=16", "batch_size=4",
        "eval_iters=2", "warmup_iters=5", "learning_rate=3e-3", "log_interval=10",
        "device=cpu", "seed=7"]


def corpus(tmp_path: Path) -> Path:
    words = ["the", "king", "queen", "speaks", "to", "his", "her", "people", "and", "sleeps"]
    lines = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(8)) for i in range(400)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def env() -> dict[str, str]:
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    e.pop("RANK", None)
    return e


def chainrule(*args: str) -> list[str]:
    return [sys.executable, "-m", "chainrule.cli", "train", *args]


def summary(proc: subprocess.CompletedProcess | subprocess.Popen, out: str) -> dict:
    assert proc.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])


def in_process(capsys, *args: str) -> dict:
    """Run ``chainrule train`` in this process (a reference run: one torch start-up fewer)."""
    from chainrule.cli import main

    capsys.readouterr()
    code = main(["train", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out.strip().splitlines()[-1])


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, capsys):
    text = corpus(tmp_path)
    args = [*TINY, "dropout=0.1", "max_iters=300", "eval_interval=25", "lr_decay_iters=300"]
    victim = subprocess.Popen(chainrule("--family", "gpt", "--kind", "char", str(text), *args,
                                        "-o", str(tmp_path / "cut"), "--json"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    state = tmp_path / "cut" / "last" / "train_state.json"
    deadline = time.monotonic() + 120
    killed_at = None
    while time.monotonic() < deadline and victim.poll() is None:
        try:
            step = json.loads(state.read_text())["step"]
        except (OSError, ValueError, KeyError):
            step = 0
        if step >= 50:
            victim.send_signal(signal.SIGKILL)
            killed_at = step
            break
        time.sleep(0.005)
    victim.wait()
    assert killed_at is not None and victim.returncode == -signal.SIGKILL, \
        "the run ended before it could be killed"
    resumed = subprocess.Popen(chainrule("--family", "gpt", str(text), *args, "-o",
                                         str(tmp_path / "cut"), "--resume", "--json"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:  # the uninterrupted run, in this process while the resumed one runs
        a = in_process(capsys, "--family", "gpt", "--kind", "char", str(text), *args,
                       "-o", str(tmp_path / "full"), "--json")
        out, err = resumed.communicate(timeout=300)
    finally:
        resumed.kill()  # a no-op once it has ended
    b = summary(resumed, out + err)
    assert b["steps"] == a["steps"] == 300
    assert b["last_loss"] == pytest.approx(a["last_loss"], abs=1e-6)
    assert b["final_val_loss"] == pytest.approx(a["final_val_loss"], abs=1e-6)
    assert b["best_val_loss"] == pytest.approx(a["best_val_loss"], abs=1e-6)


def test_ddp_two_processes_match_one_with_the_same_global_batch(tmp_path, capsys):
    pytest.importorskip("torch.distributed")
    import torch.distributed as dist

    if not dist.is_gloo_available():
        pytest.skip("this torch has no gloo backend")
    text = corpus(tmp_path)
    # global batch: 2 micro-batches of 4 windows; one process does both, or each does one
    args = ["--kind", "char", "--json", *TINY, "dropout=0", "max_iters=30", "eval_interval=30",
            "lr_decay_iters=30", "gradient_accumulation_steps=2", str(text)]
    ddp = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "chainrule.cli", "train", "--family", "gpt", *args, "-o", str(tmp_path / "two")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:  # the one-process run, in this process while torchrun runs
        a = in_process(capsys, "--family", "gpt", *args, "-o", str(tmp_path / "one"))
        out, err = ddp.communicate(timeout=300)
    finally:
        ddp.kill()  # a no-op once it has ended
    assert ddp.returncode == 0, out + err
    b = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    assert b["world_size"] == 2 and a["world_size"] == 1
    assert b["last_loss"] == pytest.approx(a["last_loss"], abs=1e-5)
    assert b["final_val_loss"] == pytest.approx(a["final_val_loss"], abs=1e-5)
    assert (tmp_path / "two" / "model.safetensors").exists()
