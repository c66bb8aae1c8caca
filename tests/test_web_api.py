"""The playground's JSON API (Starlette's TestClient): every view against the library's own
numbers, the error contract (4xx + one JSON sentence, never a traceback), and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

pytest.importorskip("starlette", reason="the playground needs the web extra")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")

from starlette.testclient import TestClient

from _web_helpers import make_model_dirs
from chainrule.decoding import GenerationConfig, generate
from chainrule.evaluation.surprisal import sentence_surprisals
from chainrule.models.attention_maps import attention_maps
from chainrule.web import Limits, create_app, load_served

pytestmark = pytest.mark.xdist_group("web-api")  # the models are built once per worker


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    dirs = make_model_dirs(tmp_path_factory.mktemp("web"))
    return {m.name: m for m in load_served(list(dirs.values()))}


@pytest.fixture(scope="module")
def client(served):
    limits = Limits(max_body_bytes=20_000, max_text_chars=5_000)
    return TestClient(create_app(list(served.values()), limits=limits))


def _last_logprobs(sm, context: str) -> torch.Tensor:
    ids = [sm.model.bos_id, *sm.tokenizer.encode(context)]
    return sm.model.logprobs(torch.tensor([ids]))[0, -1].double()


def test_models_lists_what_each_model_can_do(client):
    got = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert got["gpt"]["views"] == {"next-word": True, "surprisal": True, "attention": True,
                                   "generate": True}
    assert got["kn3"]["views"]["attention"] is False
    assert "no attention" in got["kn3"]["why_not"]["attention"]
    assert got["masked"]["views"]["next-word"] is False and got["masked"]["masked"] is True


@pytest.mark.parametrize("name", ["gpt", "kn3"])
def test_next_word_is_the_models_distribution(client, served, name):
    r = client.post("/api/next-word", json={"model": name, "context": "the king"}).json()
    lp = _last_logprobs(served[name], "the king")
    top = lp.topk(len(r["candidates"]))  # (n-gram ties may come in another order)
    assert [c["p"] for c in r["candidates"]] == pytest.approx(top.values.exp().tolist())
    for c in r["candidates"]:
        assert c["p"] == pytest.approx(math.exp(lp[c["id"]]), rel=1e-5)
        assert c["p"] == pytest.approx(c["p_model"])  # no transform: unchanged
    p = lp.exp()
    assert r["entropy_bits"] == pytest.approx(float(torch.special.entr(p).sum()) / math.log(2),
                                              rel=1e-5)
    assert r["kept"] == r["vocab_size"] - int((p == 0).sum())


def test_top_k_renormalises_the_k_best(client, served):
    r = client.post("/api/next-word", json={"model": "gpt", "context": "the", "top_k": 3}).json()
    assert r["kept"] == 3 and len(r["candidates"]) == 3
    mass = sum(c["p_model"] for c in r["candidates"])
    for c in r["candidates"]:  # the hand rule: p_i / (p_1 + p_2 + p_3)
        assert c["p"] == pytest.approx(c["p_model"] / mass, rel=1e-5)
    assert r["entropy_bits"] < r["entropy_bits_model"]


def test_temperature_zero_keeps_the_argmax_and_clicking_appends_it(client, served):
    r = client.post("/api/next-word", json={"model": "kn3", "context": "long live the",
                                            "temperature": 0}).json()
    [c] = r["candidates"]
    assert c["p"] == 1.0 and c["rank_model"] == 1
    assert c["id"] == int(_last_logprobs(served["kn3"], "long live the").argmax())
    assert c["append"] == " " + c["token"]  # a word tokenizer joins words with a space


def test_surprisal_side_by_side_equals_the_evaluator(client, served):
    text = "the king is dead\nlong live the queen"
    r = client.post("/api/surprisal", json={"models": ["gpt", "kn3", "masked"],
                                            "text": text}).json()
    assert [x["model"] for x in r["results"]] == ["gpt", "kn3", "masked"]
    for res in r["results"]:
        sm = served[res["model"]]
        ref = sentence_surprisals(sm.model, sm.tokenizer, text.splitlines())
        bits = sum(s.total_bits for s in ref)
        t = res["totals"]
        assert t["bits"] == pytest.approx(bits, rel=1e-9)
        assert t["words"] == 4 + 1 + 4 + 1  # words plus one </s> per sentence
        assert t["bits_per_word"] == pytest.approx(bits / 10)
        assert t["bits_per_byte"] == pytest.approx(bits / (len(text.encode()) + 1))
        for s, rs in zip(res["sentences"], ref):
            assert [w["bits"] for w in s["words"]] == pytest.approx(
                [w.surprisal_bits for w in rs.words])
    gpt = r["results"][0]["sentences"][0]
    m = served["gpt"].model
    ids = [m.bos_id, *served["gpt"].tokenizer.encode("the king is dead"), m.eos_id]
    lp = served["gpt"].model.logprobs(torch.tensor([ids]))[0, :-1]
    for tok, row, target in zip(gpt["tokens"], lp, ids[1:]):
        assert tok["rank"] == int((row > row[target]).sum()) + 1
        assert tok["bits"] == pytest.approx(-float(row[target]) / math.log(2), abs=1e-4)
        assert tok["bucket"] == (0 if tok["rank"] <= 10 else 1)
        assert tok["top"][0]["p"] == pytest.approx(float(row.exp().max()), rel=1e-5)
    masked = r["results"][2]
    assert masked["ranks"] is False and masked["sentences"][0]["tokens"][0]["rank"] is None
    plain = client.post("/api/surprisal", json={"models": ["kn3"], "text": text,
                                                "ranks": False}).json()["results"][0]
    assert plain["totals"] == r["results"][1]["totals"] and plain["ranks"] is False
    assert plain["sentences"][1]["tokens"][2]["top"] is None


def test_attention_is_every_layer_and_head(client, served):
    r = client.post("/api/attention", json={"model": "gpt", "text": "the king is dead"}).json()
    [g] = r["groups"]
    assert r["tokens"] == ["<s>", "the", "king", "is", "dead", "</s>"]
    assert (g["layers"], g["heads"]) == (2, 2)
    sm = served["gpt"]
    ref = attention_maps(sm.model, [sm.model.bos_id, *sm.tokenizer.encode("the king is dead"),
                                   sm.model.eos_id])
    assert torch.tensor(g["weights"]) == pytest.approx(ref, abs=1e-5)


def test_bpe_is_the_lectures_worked_example(client):
    from chainrule.tokenizers import BPETokenizer

    corpus = "low " * 5 + "lowest " * 2 + "newer " * 6 + "wider " * 3 + "new " * 2
    r = client.post("/api/bpe", json={"corpus": corpus, "merges": 8, "word": "lowest"}).json()
    assert [tuple(s["merge"]) for s in r["steps"]] == [
        ("e", "r"), ("er", "_"), ("n", "e"), ("ne", "w"), ("l", "o"), ("lo", "w"),
        ("new", "er_"), ("low", "_")]
    assert r["steps"][0]["count"] == 9  # newer x 6 + wider x 3
    assert ["n e w er _", 6] in r["steps"][0]["corpus"]
    assert ["newer_", 6] in r["steps"][6]["corpus"]
    tok = BPETokenizer.train([corpus], vocab_size=100)
    # the split after all merges is the trained tokenizer's (which learns more merges)
    for word in ("lowest", "newer", "wider", "slow", "renew", "lower"):
        r = client.post("/api/bpe", json={"corpus": corpus, "merges": len(tok.merges),
                                          "word": word}).json()
        pieces = [tok.id_to_token(i) for i in tok.encode(word)]
        assert r["split"]["steps"][-1].split() == pieces
        assert r["split"]["steps"][0] == " ".join([*word, "_"])


def _events(response) -> list[dict]:
    return [json.loads(line[6:]) for line in response.text.splitlines()
            if line.startswith("data: ")]


def test_generate_streams_each_strategy_as_the_decoder_does(client, served):
    body = {"models": ["gpt", "kn3"], "prompt": "the king", "max_new_tokens": 6, "seed": 7}
    with client.stream("POST", "/api/generate", json=body) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        resp.read()
    events = _events(resp)
    start = events[0]
    assert start["event"] == "start" and events[-1]["event"] == "end"
    assert [c["column"] for c in start["columns"]] == ["greedy", "sample", "top-p", "beam"]
    assert start["columns"][1]["seed"] == 7
    done = {(e["model"], e["column"]): e for e in events if e["event"] == "done"}
    assert len(done) == 8
    configs = {"greedy": GenerationConfig(strategy="greedy", max_new_tokens=6),
               "sample": GenerationConfig(strategy="sample", max_new_tokens=6, seed=7),
               "top-p": GenerationConfig(strategy="sample", top_p=0.9, max_new_tokens=6, seed=7),
               "beam": GenerationConfig(strategy="beam", num_beams=4, max_new_tokens=6)}
    for (name, col), ev in done.items():
        sm = served[name]
        [[ref]] = generate(sm.model, ["the king"], configs[col], tokenizer=sm.tokenizer)
        assert ev["text"] == ref.text and ev["logprob"] == pytest.approx(ref.logprob)
        streamed = "".join(e["text"] for e in events
                           if e["event"] == "token" and (e["model"], e["column"]) == (name, col))
        assert streamed == ref.text


BAD = [
    ("/api/next-word", b"{not json", 400, "not valid JSON"),
    ("/api/next-word", b"[1, 2]", 400, "JSON object"),
    ("/api/next-word", json.dumps({"model": "nope", "context": "x"}).encode(), 404, "unknown model"),
    ("/api/next-word", json.dumps({"model": "masked", "context": "x"}).encode(), 422,
     "cannot predict"),
    ("/api/next-word", json.dumps({"model": "gpt", "context": "x", "top_p": 2}).encode(), 400,
     "'top_p'"),
    ("/api/next-word", json.dumps({"model": "gpt", "context": 5}).encode(), 400, "string"),
    ("/api/surprisal", json.dumps({"models": ["gpt"], "text": "a " * 3000}).encode(), 413,
     "at most"),
    ("/api/surprisal", b"{\"models\": [\"gpt\"], \"text\": \"" + b"a" * 30_000 + b"\"}", 413,
     "bytes"),
    ("/api/attention", json.dumps({"model": "kn3", "text": "the king"}).encode(), 422,
     "no attention"),
    ("/api/attention", json.dumps({"model": "gpt", "text": "the " * 40}).encode(), 400,
     "shorten"),
    ("/api/generate", json.dumps({"models": ["gpt"], "max_new_tokens": 10**6}).encode(), 400,
     "'max_new_tokens'"),
    ("/api/bpe", json.dumps({"corpus": "a_b c", "merges": 3}).encode(), 400, "'_'"),
    ("/api/ladder", None, 422, "--ladder"),
]


@pytest.mark.parametrize("path,body,status,words", BAD)
def test_bad_requests_get_a_4xx_and_one_sentence(client, path, body, status, words):
    resp = (client.get(path) if body is None else
            client.post(path, content=body, headers={"Content-Type": "application/json"}))
    assert resp.status_code == status
    err = resp.json()["error"]
    assert words in err and "Traceback" not in err and "\n" not in err


def test_only_json_and_only_the_loopback_host_are_served(client, served):
    resp = client.post("/api/next-word", content=b'{"model": "gpt", "context": "the"}',
                       headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415 and "application/json" in resp.json()["error"]
    app = create_app(list(served.values()), allowed_hosts=["127.0.0.1", "localhost"])
    local = TestClient(app, base_url="http://127.0.0.1:8000")
    assert local.get("/api/models").status_code == 200
    far = TestClient(app, base_url="http://attacker.example:8000")
    resp = far.get("/api/models")
    assert resp.status_code == 400 and "attacker.example" in resp.json()["error"]


def test_no_path_from_a_request_reaches_the_disk(client):
    assert client.get("/static/app.js").status_code == 200
    for path in ["/static/..%2F..%2Fserved.py", "/static/%2e%2e/app.py", "/static/x.py",
                 "/api/ladder/plot.png", "/static/../web/app.py"]:
        resp = client.get(path)
        assert resp.status_code == 404 and "error" in resp.json()
    assert b"/static/app.js" in client.get("/").content


def test_serve_cli_refuses_bad_input_in_one_line(tmp_path, capsys):
    import socket

    from chainrule.cli import main
    from chainrule.cli.serve import bind, is_loopback

    assert main(["serve", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a model directory" in err
    assert main(["serve", "--ladder", str(tmp_path)]) == 2
    assert "has no results.json" in capsys.readouterr().err
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        from chainrule.errors import ConfigError

        with pytest.raises(ConfigError, match="already in use"):
            bind("127.0.0.1", s.getsockname()[1])


def test_fifty_concurrent_requests_each_get_their_own_answer(served, client):
    """Mixed views on the same models from 50 threads at once: every answer equals the one
    the same request gets alone (a shared model's state is never corrupted)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from _web_helpers import LINES, LiveServer

    jobs = []
    for i in range(50):
        line = LINES[i % 10]
        if i % 3 == 0:
            jobs.append(("/api/surprisal", {"models": ["gpt", "kn3"], "text": line}))
        else:
            jobs.append(("/api/next-word", {"model": ["gpt", "kn3"][i % 2],
                                            "context": line, "top_k": 1 + i % 7}))
    alone = [client.post(p, json=b).json() for p, b in jobs]
    with (LiveServer(client.app) as url, httpx.Client(base_url=url, timeout=60) as http,
          ThreadPoolExecutor(50) as pool):
        together = list(pool.map(lambda job: http.post(job[0], json=job[1]), jobs))
    assert all(r.status_code == 200 for r in together)
    for got, want in zip(together, alone):
        assert got.json() == want


def test_encoder_decoder_attention_next_word_and_generate_take_a_source(tmp_path):
    from _web_helpers import LINES
    from chainrule.models.neural import build_neural_model
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("word", LINES)
    torch.manual_seed(0)
    model = build_neural_model("transformer-ed", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                               eos_id=tok.eos_id, n_layer=1, n_head=2, n_embd=16).eval()
    d = tmp_path / "ed"
    model.save(d)
    tok.save(d / "tokenizer.json")
    client = TestClient(create_app(load_served([d])))
    [info] = client.get("/api/models").json()["models"]
    assert info["conditional"] and info["views"]["attention"]
    assert not info["views"]["surprisal"]
    r = client.post("/api/attention", json={"model": "ed", "text": "the king",
                                            "source": "king the dead"})
    groups = {g["name"]: g for g in r.json()["groups"]}
    cross = groups["cross-attention"]
    assert cross["rows"] == ["<s>", "the", "king", "</s>"]
    assert cross["cols"] == ["king", "the", "dead", "</s>"]
    assert torch.tensor(cross["weights"]).sum(-1) == pytest.approx(torch.ones(1, 2, 4),
                                                                   abs=1e-4)
    assert client.post("/api/attention", json={"model": "ed", "text": "x"}).status_code == 400
    nw = client.post("/api/next-word", json={"model": "ed", "context": "the",
                                             "source": "king the"}).json()
    src = [tok.encode("king the")]
    lp = model.logprobs(torch.tensor([[tok.bos_id, *tok.encode("the")]]), source=src)[0, -1]
    assert nw["candidates"][0]["p"] == pytest.approx(float(lp.exp().max()), rel=1e-5)
    assert client.post("/api/surprisal", json={"models": ["ed"], "text": "the"}
                       ).status_code == 422
