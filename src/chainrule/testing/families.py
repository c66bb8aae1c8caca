"""The families the conformance suite runs on: name -> how to build a fitted tiny model.

A family module adds itself here with a builder that fits on ``TinyTask.sequences`` using
``task.seed``; ``tests/test_conformance.py`` picks every entry up.
"""

from __future__ import annotations

from chainrule.testing.conformance import FamilySpec, TinyTask


def _uniform(task: TinyTask):
    from chainrule.models.reference import UniformModel

    return UniformModel(task.vocab_size, task.bos_id, task.eos_id)


def _unigram(task: TinyTask):
    from chainrule.models.reference import UnigramModel

    return UnigramModel(task.vocab_size, task.bos_id, task.eos_id).fit(task.sequences)


FAMILY_SPECS: dict[str, FamilySpec] = {
    "uniform": FamilySpec("uniform", _uniform, learns=False),
    "unigram": FamilySpec("unigram", _unigram),
}
