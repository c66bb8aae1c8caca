"""Tiny models for the playground tests: a GPT, a Kneser-Ney trigram and a masked toy, all on
one word vocabulary, saved as model directories."""

from __future__ import annotations

from pathlib import Path

import torch

LINES = [
    "the king is dead", "long live the king", "the queen is here", "the king and the queen",
    "a dog sat on the mat", "the cat sat on the mat", "the king sat on the throne",
    "long live the queen", "a cat and a dog", "the dog is dead",
] * 3


def make_model_dirs(root: Path) -> dict[str, Path]:
    from chainrule.models.neural import build_neural_model
    from chainrule.models.ngram.train import save_ngram, train_ngram
    from chainrule.testing.toys import NeighbourMaskedLM, ToyConfig, fit_toy
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("word", LINES)
    seqs = [[tok.bos_id, *tok.encode(x), tok.eos_id] for x in LINES]
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = {}

    torch.manual_seed(0)
    gpt = build_neural_model("gpt", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                             eos_id=tok.eos_id, block_size=32, n_layer=2, n_head=2, n_embd=16,
                             dropout=0.0)
    T = max(len(s) for s in seqs)
    batch = torch.full((len(seqs), T), -100, dtype=torch.long)
    for i, s in enumerate(seqs):
        batch[i, : len(s)] = torch.tensor(s)
    opt = torch.optim.Adam(gpt.parameters(), lr=1e-2)
    gpt.train()
    for _ in range(30):
        logits, _ = gpt(batch[:, :-1].clamp(min=0))
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    gpt.eval()
    out["gpt"] = root / "gpt"
    gpt.save(out["gpt"])
    tok.save(out["gpt"] / "tokenizer.json")

    result = train_ngram([corpus], order=3, smoothing="mkn", tokenizer=tok)
    out["kn3"] = root / "kn3"
    save_ngram(result.model, result.tokenizer, out["kn3"])

    torch.manual_seed(0)
    masked = NeighbourMaskedLM(ToyConfig(tok.vocab_size, tok.bos_id, tok.eos_id))
    fit_toy(masked, seqs)
    out["masked"] = root / "masked"
    masked.save(out["masked"])
    tok.save(out["masked"] / "tokenizer.json")
    return out


class LiveServer:
    """The app served by uvicorn on a free loopback port in a thread (``with`` starts/stops)."""

    def __init__(self, app):
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))

    def __enter__(self) -> str:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
