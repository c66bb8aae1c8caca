"""FSDP2 (``strategy=fsdp``) on the CPU with gloo: two processes train exactly as one does.

The two ranks are forked from this process (torch is already imported, so they start in
milliseconds) and join a gloo process group the way ``torchrun`` would make them, through
``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR``. The reference is one process with the same global
batch (2 micro-batches of 4 windows; each rank takes one).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("multiprocess")]

dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("this torch has no gloo backend", allow_module_level=True)

VOCAB = 24


def _ids(n: int, seed: int) -> np.ndarray:
    """A toy language that mostly counts upwards (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    jumps = np.where(rng.random(n) < 0.8, 1, rng.integers(2, 6, n))
    return (np.cumsum(jumps) % (VOCAB - 2) + 2).astype(np.int32)


def _config(family: str, max_iters: int, strategy: str):
    from chainrule.training import make_config

    shape = (["n_layer=2", "n_head=2", "n_embd=16"] if family == "gpt"
             else ["n_layer=2", "n_embd=16", "n_hidden=16"])
    return make_config(family, None, [
        *shape, "block_size=16", "batch_size=4", "gradient_accumulation_steps=2",
        "dropout=0", f"max_iters={max_iters}", "eval_interval=5", "eval_iters=3",
        "warmup_iters=2", "lr_decay_iters=10", "learning_rate=3e-3", "log_interval=5",
        "device=cpu", "seed=3", f"strategy={strategy}"])


def _probe(model, step: int) -> dict:
    """An ``on_evaluate`` callback: it gets an ordinary model (FSDP: gathered to rank 0)."""
    x = torch.as_tensor(_ids(30, 9)[None].astype(np.int64))
    return {"probe": float(model.token_logprobs(x).sum())}


def _train(out: Path, family: str, max_iters: int, strategy: str, resume: bool) -> dict:
    from chainrule.training import train

    s = train(_config(family, max_iters, strategy), _ids(3000, 0), _ids(600, 1), out,
              vocab_size=VOCAB, resume=resume, progress=False, plot=False, on_evaluate=_probe)
    return dict(s)


def _probes(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["probe"] for r in rows if "probe" in r]


def _rank(rank: int, ports: list[int], out: str, family: str, runs: list) -> None:
    """One forked rank: join the group as torchrun's environment says, then train (each
    run joins and leaves a group of its own, on its own port)."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1")
    for port, (max_iters, resume) in zip(ports, runs):
        os.environ["MASTER_PORT"] = str(port)
        summary = _train(Path(out), family, max_iters, "fsdp", resume)
        if rank == 0:
            Path(out, f"summary{max_iters}.json").write_text(json.dumps(summary))


def _shard_rank(rank: int, ports: list[int], out: str, family: str, runs: list) -> None:
    """One forked rank: shard a GPT with the strategy and report what this rank holds."""
    import torch.distributed as dist

    from chainrule.models.neural import build_neural_model
    from chainrule.training.distributed import DistInfo
    from chainrule.training.strategy import make_strategy

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{ports[0]}", rank=rank,
                            world_size=2)
    try:
        torch.manual_seed(0)
        model = build_neural_model("gpt", vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=16,
                                   block_size=16)
        full = sum(p.numel() for p in model.parameters())
        strategy = make_strategy("fsdp", DistInfo(rank, 2, rank), torch.device("cpu"))
        model, opt = strategy.shard(model, torch.optim.AdamW(model.parameters()),
                                    lambda m: torch.optim.AdamW(m.parameters()))
        local = sum(p.to_local().numel() for p in model.parameters())
        stepped = {id(p) for g in opt.param_groups for p in g["params"]}
        Path(out, f"shard{rank}.json").write_text(json.dumps({
            "full": full, "local": local,
            "optimizer_on_shards": stepped == {id(p) for p in model.parameters()}}))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(out: Path, family: str, runs: list, worker=_rank) -> None:
    import torch.multiprocessing as mp

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        assert k not in os.environ
    # import FSDP's modules once, here, rather than in each forked rank (seconds each)
    import torch.distributed.checkpoint.state_dict
    import torch.distributed.device_mesh
    import torch.distributed.fsdp  # noqa: F401
    ports = [_free_port() for _ in runs]
    ctx = mp.start_processes(worker, args=(ports, str(out), family, runs), nprocs=2,
                             start_method="fork", join=False)
    deadline = time.monotonic() + 240
    try:
        while not ctx.join(timeout=1):  # raises (with the rank's traceback) if one fails
            assert time.monotonic() < deadline, "the two ranks did not finish in time"
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()


@pytest.mark.parametrize("family", ["gpt", "lstm"])
def test_fsdp_two_processes_match_one_then_resume_and_load(tmp_path, family):
    one = _train(tmp_path / "one", family, 10, "ddp", resume=False)
    # two ranks: 5 steps, stop, resume to 10 (the checkpoint of step 5 is gathered to rank 0)
    _two_ranks(tmp_path / "two", family, [(5, False), (10, True)])
    two = json.loads((tmp_path / "two" / "summary10.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1 and two["steps"] == 10
    for key in ("last_loss", "final_val_loss", "best_val_loss"):
        assert two[key] == pytest.approx(one[key], abs=1e-5), key
    # the evaluation callback saw the same weights at steps 0, 5 and 10
    assert len(_probes(tmp_path / "two")) == 3
    assert _probes(tmp_path / "two") == pytest.approx(_probes(tmp_path / "one"), abs=1e-4)
    # the checkpoint is an ordinary model directory: safetensors + JSON, load_model reads it
    from chainrule.models import load_model

    a, b = load_model(tmp_path / "one"), load_model(tmp_path / "two")
    x = torch.as_tensor(_ids(40, 5)[None].astype(np.int64))
    assert torch.allclose(a.token_logprobs(x), b.token_logprobs(x), atol=1e-5)
    sd_a, sd_b = a.state_dict(), b.state_dict()
    assert sd_a.keys() == sd_b.keys()
    assert all(torch.allclose(sd_a[k], sd_b[k], atol=1e-5) for k in sd_a)


def test_each_rank_holds_half_of_every_parameter(tmp_path):
    _two_ranks(tmp_path, "gpt", [None], worker=_shard_rank)
    held = [json.loads((tmp_path / f"shard{r}.json").read_text()) for r in (0, 1)]
    full = held[0]["full"]
    # dim 0 of each tensor is cut in two (an odd size leaves rank 1 one row short)
    assert held[0]["local"] + held[1]["local"] == full
    assert all(abs(h["local"] - full / 2) < 0.1 * full for h in held)
    assert all(h["optimizer_on_shards"] for h in held)  # AdamW steps the shards


def test_shard_units_are_the_transformer_blocks():
    from chainrule.models.neural import build_neural_model
    from chainrule.training.strategy import shard_units

    gpt = build_neural_model("gpt", vocab_size=10, n_layer=3, n_head=2, n_embd=8, block_size=8)
    assert shard_units(gpt) == list(gpt.transformer.h)
    lstm = build_neural_model("lstm", vocab_size=10, n_layer=2, n_embd=8, n_hidden=8)
    assert shard_units(lstm) == []  # one unit: the root


def test_strategy_is_checked_and_a_no_op_in_one_process(tmp_path):
    from chainrule.errors import ConfigError
    from chainrule.training import make_config

    with pytest.raises(ConfigError, match="strategy must be ddp or fsdp"):
        make_config("gpt", None, ["strategy=zero3"])
    # one process: fsdp trains exactly as ddp (nothing to shard over)
    a = _train(tmp_path / "a", "gpt", 5, "ddp", resume=False)
    b = _train(tmp_path / "b", "gpt", 5, "fsdp", resume=False)
    assert a["last_loss"] == b["last_loss"] and a["final_val_loss"] == b["final_val_loss"]


def test_strategy_flag_on_the_command_line(tmp_path, capsys):
    from chainrule.cli import main

    text = tmp_path / "corpus.txt"
    text.write_text("the king speaks to his people and sleeps\n" * 60, encoding="utf-8")
    code = main(["train", "--family", "ngram", "--strategy", "fsdp", str(text), "-o",
                 str(tmp_path / "ng")])
    assert code == 2 and "--strategy applies to neural families" in capsys.readouterr().err
    code = main(["train", "--family", "gpt", "--kind", "char", "--strategy", "fsdp", str(text),
                 "n_layer=1", "n_head=2", "n_embd=16", "block_size=16", "batch_size=4",
                 "max_iters=2", "eval_iters=1", "device=cpu", "--json", "-o",
                 str(tmp_path / "gpt")])
    assert code == 0
    state = json.loads((tmp_path / "gpt" / "last" / "train_state.json").read_text())
    assert state["config"]["strategy"] == "fsdp"
