"""CLI behaviour shared by every command: --version, --help, and errors without tracebacks."""

import json
import subprocess
import sys

import pytest

from chainrule import __version__
from chainrule.cli import build_parser, main


def _subcommand_paths():
    parser = build_parser()
    paths = []

    def walk(p, prefix):
        for action in p._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, child in action.choices.items():
                    paths.append(prefix + [name])
                    walk(child, prefix + [name])

    walk(parser, [])
    return paths


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"chainrule {__version__}"


@pytest.mark.parametrize("module", ["chainrule", "chainrule.cli"])
def test_python_dash_m_runs_the_cli(module):
    out = subprocess.run([sys.executable, "-m", module, "--version"], check=False,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"chainrule {__version__}"


@pytest.mark.parametrize("path", _subcommand_paths(), ids=" ".join)
def test_every_command_has_help(path, capsys):
    with pytest.raises(SystemExit) as e:
        main([*path, "--help"])
    assert e.value.code == 0
    assert "usage: chainrule" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "ppl", "/no/such/model", "--data", "/no/such/file"],
        ["generate", "/no/such/model"],
    ],
)
def test_missing_files_give_one_sentence(argv, tmp_path):
    if not any(p[0] == argv[0] for p in _subcommand_paths()):
        pytest.skip(f"{argv[0]} not available")
    r = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", *argv], capture_output=True, text=True, check=False
    )
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ")
    assert len(r.stderr.strip().splitlines()) == 1


def test_model_directory_of_another_tool(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    import chainrule
    from chainrule.errors import ModelFormatError

    with pytest.raises(ModelFormatError, match="not a chainrule model config"):
        chainrule.load_model(tmp_path)


def test_json_output_is_strict_json(capsys):
    """--json never prints NaN or Infinity (strict parsers reject them): undefined is null."""
    import json

    from chainrule.cli._output import print_json

    print_json({"ppl": float("nan"), "rows": [float("inf"), 1.5, (2.0, float("-inf"))]})
    out = capsys.readouterr().out
    assert json.loads(out) == {"ppl": None, "rows": [None, 1.5, [2.0, None]]}
    assert "NaN" not in out and "Infinity" not in out
