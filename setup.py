"""Build step for chainrule's compiled core (the BPE trainer and encoder).

The core is optional at run time: if it cannot be built, chainrule falls back to its pure-Python
reference implementation (same results, much slower).
"""

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

ext_modules = [
    Pybind11Extension(
        "chainrule._bpe_core",
        ["src/chainrule/_bpe/core.cpp"],
        cxx_std=17,
        extra_compile_args=["-O3"],
    ),
    # word2vec's SGD kernel (chainrule.embeddings falls back to a batched torch trainer without it)
    Pybind11Extension(
        "chainrule._w2v_core",
        ["src/chainrule/_w2v/core.cpp"],
        cxx_std=17,
        extra_compile_args=["-O3", "-march=x86-64-v2", "-ffast-math"],
    ),
    # n-gram scoring: hashed tables, state carried across tokens (numpy reference without it;
    # no -ffast-math: scores must stay bit-identical to the reference)
    Pybind11Extension(
        "chainrule._ngram_query_core",
        ["src/chainrule/_ngram_query/core.cpp"],
        depends=["src/chainrule/_ngram_query/words.hpp"],  # text in: split + word lookup
        cxx_std=17,
        extra_compile_args=["-O3"],
    ),
    # n-gram estimation: words -> ids, sorted (spilled) runs of windows, every order derived,
    # ARPA text (numpy counts and Python writes without it)
    Pybind11Extension(
        "chainrule._ngram_count_core",
        ["src/chainrule/_ngram_count/core.cpp"],
        depends=[f"src/chainrule/_ngram_count/{h}.h" for h in (
            "arpa_text", "common", "counter", "derived", "key_index", "order_files", "runs", "text")],
        cxx_std=17,
        extra_compile_args=["-O3"],
    ),
    # ARPA reading: the sections parsed from the bytes, any layout (the Python reader without
    # it, and for files it would refuse)
    Pybind11Extension(
        "chainrule._arpa_core",
        ["src/chainrule/_arpa/core.cpp"],
        depends=[f"src/chainrule/_arpa/{h}.h" for h in ("radix", "suffix", "word_table")],
        cxx_std=17,
        extra_compile_args=["-O3"],
    ),
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
