"""Evaluate LoRA adapters beside their base models (``chainrule prompt eval --adapter DIR``).

Each adapter names its base model by the fingerprint of its weights (``adapter.json``); it is
put on a fresh copy of the listed model directory with that fingerprint, so base and adapted
model are scored in one run without a merged copy on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def adapter_label(directory: str) -> str:
    """``runs/smol-lora/adapter`` -> ``smol-lora``; any other directory: its own name."""
    p = Path(directory).resolve()
    return p.parent.name if p.name == "adapter" and p.parent.name else p.name


def adapter_entries(adapters: Sequence[str], model_dirs: Sequence[str], entries: Sequence[Any],
                    device: str | None) -> list[Any]:
    """A :class:`~chainrule.prompting.ModelEntry` per adapter, on its base among
    ``model_dirs`` (whose loaded entries are ``entries``); one sentence when none matches."""
    from chainrule.cli.generate import load_model_and_tokenizer
    from chainrule.errors import ConfigError
    from chainrule.models.lora import base_fingerprint, load_adapter, read_adapter
    from chainrule.prompting import ModelEntry

    prints: dict[int, str] = {}
    out = []
    for a in adapters:
        want = read_adapter(a)[0].get("base_fingerprint")
        match = None
        for i, entry in enumerate(entries):
            if i not in prints:
                prints[i] = base_fingerprint(entry.model)
            if prints[i] == want:
                match = i
                break
        if match is None:
            raise ConfigError(f"the adapter in {a!r} was trained on none of the models given "
                              f"({', '.join(model_dirs)}): its base fingerprint matches no "
                              "MODEL_DIR; list the model it was trained from.")
        model, _ = load_model_and_tokenizer(model_dirs[match], device)
        load_adapter(model, a)
        base = entries[match]
        name = f"{base.name}+{adapter_label(a)}"
        taken = {e.name for e in [*entries, *out]}
        k = 2
        while name in taken:
            name, k = f"{base.name}+{adapter_label(a)}-{k}", k + 1
        out.append(ModelEntry(name, model.eval(), base.tokenizer, base.chat_template))
    return out


__all__ = ["adapter_entries", "adapter_label"]
