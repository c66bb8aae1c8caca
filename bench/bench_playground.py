"""Playground latency against the local server: next word (p50 over 100 requests) and the
surprisal of 2,000 words, for the demo's GPT and KN5.

Targets (issue 20): next word <= 50 ms, surprisal of 2,000 words <= 1 s, on CPU.

The server is `chainrule serve` in its own process on 127.0.0.1, queried over HTTP with httpx.
The same-run peer is the library call the endpoint makes, timed in this process without HTTP
(`model.start` on the context; `sentence_surprisals` without ranks), so the ratio is what the
web layer, JSON and the ranks/alternatives add.

    .venv/bin/chainrule demo -o /tmp/pg-demo --rungs kn5,gpt --budget 150     # the models
    nice -n 10 .venv/bin/python bench/bench_playground.py /tmp/pg-demo/models/gpt \
        /tmp/pg-demo/models/kn5
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def words_of_shakespeare(n: int, skip_lines: int = 30_000) -> str:
    """About ``n`` words of the bundled Tiny Shakespeare (lines from its end: test text)."""
    lines = (resources.files("chainrule") / "resources" / "tinyshakespeare.txt").read_text(
        encoding="utf-8").splitlines()[skip_lines:]
    out, count = [], 0
    for line in lines:
        if line.strip():
            out.append(line.strip())
            count += len(line.split())
            if count >= n:
                break
    return "\n".join(out)


def main() -> int:
    import httpx
    import torch

    ap = argparse.ArgumentParser(description="playground latency")
    ap.add_argument("models", nargs="+", help="model directories (the demo's gpt and kn5)")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    server = subprocess.Popen([sys.executable, "-m", "chainrule.cli", "serve", *args.models,
                               "--port", str(port), "--threads", str(args.threads)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(600):
                try:
                    names = [m["name"] for m in http.get("/api/models").json()["models"]]
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise SystemExit("the server did not start")
            from chainrule.evaluation.surprisal import sentence_surprisals
            from chainrule.web.served import load_served

            local = {m.name: m for m in load_served(args.models)}
            contexts = [f"the king {w}" for w in ("is", "and", "of", "my", "the")] * 40
            text = words_of_shakespeare(2000)
            print(f"load: {os.getloadavg()[0]:.2f} (1-min average), threads {args.threads}")
            floor = []
            for _ in range(args.requests):
                t = time.perf_counter()
                http.get("/api/models")
                floor.append(time.perf_counter() - t)
            print(f"HTTP floor (GET /api/models, no model work) p50 "
                  f"{1000 * statistics.median(floor):.1f} ms")
            print(f"surprisal text: {len(text.split())} words, {len(text.splitlines())} lines")
            for name in names:
                sm = local[name]
                http.post("/api/next-word", json={"model": name, "context": "warm up"})
                lat = []
                c0 = cpu_seconds(server.pid)
                for ctx in contexts[: args.requests]:
                    t = time.perf_counter()
                    r = http.post("/api/next-word", json={"model": name, "context": ctx,
                                                          "top_k": 40, "top_p": 0.9})
                    lat.append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
                per_request_cpu = (cpu_seconds(server.pid) - c0) / len(lat)
                lib = []
                for ctx in contexts[: args.requests]:
                    ids = [sm.model.bos_id, *sm.tokenizer.encode(ctx)]
                    t = time.perf_counter()
                    with torch.no_grad():
                        sm.model.start(torch.tensor([ids]), torch.tensor([len(ids)]))
                    lib.append(time.perf_counter() - t)
                p50, lib50 = statistics.median(lat), statistics.median(lib)
                print(f"{name:6} next word p50 {1000 * p50:7.1f} ms  (p90 "
                      f"{1000 * sorted(lat)[int(0.9 * len(lat))]:.1f} ms; library "
                      f"{1000 * lib50:.2f} ms; ratio {p50 / lib50:.1f}x; server CPU "
                      f"{1000 * per_request_cpu:.1f} ms/request)  target <= 50 ms")
                srv, ref, cpu = [], [], []
                for _ in range(5):
                    t, c = time.perf_counter(), cpu_seconds(server.pid)
                    r = http.post("/api/surprisal", json={"models": [name], "text": text})
                    srv.append(time.perf_counter() - t)
                    cpu.append(cpu_seconds(server.pid) - c)
                    assert r.status_code == 200, r.text
                    t = time.perf_counter()
                    sentence_surprisals(sm.model, sm.tokenizer, text.splitlines())
                    ref.append(time.perf_counter() - t)
                plain = []
                for _ in range(5):
                    t = time.perf_counter()
                    http.post("/api/surprisal", json={"models": [name], "text": text,
                                                      "ranks": False})
                    plain.append(time.perf_counter() - t)
                print(f"{name:6} surprisal of 2,000 words without ranks "
                      f"{statistics.median(plain):6.3f} s")
                s50, r50 = statistics.median(srv), statistics.median(ref)
                print(f"{name:6} surprisal of 2,000 words {s50:6.3f} s (library without ranks "
                      f"{r50:.3f} s; ratio {s50 / r50:.1f}x; response "
                      f"{len(r.content) / 1e6:.1f} MB; server CPU "
                      f"{statistics.median(cpu):.3f} s)  target <= 1 s")
            print(f"load after: {os.getloadavg()[0]:.2f}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
