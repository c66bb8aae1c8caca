"""``chainrule --threads N``: PyTorch's CPU threads, its default, and bad values."""

from __future__ import annotations

import pytest
import torch

from chainrule.cli import build_parser, main
from chainrule.threads import default_threads, parse_threads


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one line\nand another\n", encoding="utf-8")
    return str(path)


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("n", [1, 2])
def test_threads_option_sets_torch_threads(corpus, capsys, where, n):
    argv = (["--threads", str(n), "corpus", "stats", corpus] if where == "before"
            else ["corpus", "stats", "--threads", str(n), corpus])
    torch.set_num_threads(3 - n)  # the other value, so the option has to change it
    assert main(argv) == 0
    assert torch.get_num_threads() == n
    assert "lines" in capsys.readouterr().out


def test_every_command_takes_threads():
    parser = build_parser()
    assert parser.parse_args(["eval", "ppl", "--threads", "3", "m", "--data", "x"]).threads == "3"
    assert parser.parse_args(["--threads", "3", "eval", "ppl", "m", "--data", "x"]).threads == "3"
    assert parser.parse_args(["tokenizer", "inspect", "t.json"]).threads is None


@pytest.mark.parametrize("value", ["0", "x", "-2", "1.5", ""])
def test_bad_threads_is_one_sentence(corpus, capsys, value):
    assert main(["--threads", value, "corpus", "stats", corpus]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --threads takes a whole number of threads, 1 or more")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_chainrule_threads_environment_is_one_sentence(corpus, capsys, monkeypatch):
    monkeypatch.setenv("CHAINRULE_THREADS", "many")
    assert main(["corpus", "stats", corpus]) == 2
    assert capsys.readouterr().err.startswith("error: CHAINRULE_THREADS takes a whole number")


def test_default_honours_the_environment(corpus, monkeypatch):
    monkeypatch.setenv("CHAINRULE_THREADS", "2")
    torch.set_num_threads(1)
    assert main(["corpus", "stats", corpus]) == 0
    assert torch.get_num_threads() == 2
    assert default_threads({"CHAINRULE_THREADS": "3", "OMP_NUM_THREADS": "5"}) == (
        3, "CHAINRULE_THREADS")
    assert default_threads({"OMP_NUM_THREADS": "5"}) == (5, "OMP_NUM_THREADS")


@pytest.mark.parametrize(
    ("load", "cores", "cpus", "expected"),
    [
        (0.0, 2, 2, (2, "cores")),  # an idle two-core box: both cores
        (0.7, 2, 2, (1, "load")),  # one core mostly busy: one thread
        (8.0, 2, 2, (1, "load")),  # far over-subscribed: still one
        (0.0, 16, 32, (8, "cores")),  # many cores: capped at 8
        (27.6, 16, 32, (4, "load")),  # four CPUs idle
    ],
)
def test_default_backs_off_on_a_busy_machine(load, cores, cpus, expected):
    env = {"OMP_NUM_THREADS": "not a number"}  # ignored: it is OpenMP's, not ours to judge
    assert default_threads(env, load=load, cores=cores, cpus=cpus) == expected


def test_parse_threads():
    assert parse_threads(" 4 ") == 4
    with pytest.raises(Exception, match="CHAINRULE_THREADS takes a whole number"):
        parse_threads("0", "CHAINRULE_THREADS")
