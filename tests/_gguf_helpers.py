"""Tiny Llama models written as GGUF files with the ``gguf`` package's writer, the way llama.cpp's
converter writes them (queries and keys row-permuted), for the GGUF import tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from chainrule.tokenizers import ByteBPETokenizer

TEXT = (
    "In 1984 the 3 quick brown foxes jumped over 12 lazy dogs; they're fine, aren't they? "
    "Numbers like 2048 and 65536 appear in   spaced    text.\nNew lines, tabs\tand émigrés: "
    "naïve café ☃ 日本語. It's 10:45 -- we'll see you at 7.30pm on the 2nd of May 2025!\n"
) * 20
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
# A ChatML template in the usual Jinja style (kept verbatim by the importer, never executed).
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Sizes: quantised blocks run along rows of 32 columns, so widths are multiples of 32.
V_MERGES, C, N_HEAD, N_KV, INNER, N_LAYER, CTX = 300, 64, 4, 2, 96, 2, 64


def tiny_vocab(drop_bytes: tuple[int, ...] = ()) -> tuple[list[str], list[str], list[int]]:
    """(tokens, merges "a b", token types) of a small byte-level BPE vocabulary.

    ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` come first (control tokens, as in
    SmolLM2); ``drop_bytes`` removes byte symbols (SmolLM2 lacks a few).
    """
    from chainrule.tokenizers._pretok import bytes_to_unicode

    trained = ByteBPETokenizer.train([TEXT], vocab_size=V_MERGES)
    gone = {bytes_to_unicode()[b] for b in drop_bytes}
    ordinary = [t for i, t in enumerate(trained.vocab)
                if i not in trained.special_tokens.values() and t not in gone]
    tokens = ["<|endoftext|>", IM_START, IM_END, *ordinary]
    merges = [f"{a} {b}" for a, b in trained.merges]
    types = [3, 3, 3] + [1] * len(ordinary)
    return tokens, merges, types


def tiny_llama(vocab_size: int, *, tied: bool = True, seed: int = 0):
    """A random ``transformers`` LlamaForCausalLM with grouped-query attention, float32."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=C, intermediate_size=INNER,
                      num_hidden_layers=N_LAYER, num_attention_heads=N_HEAD,
                      num_key_value_heads=N_KV, max_position_embeddings=CTX,
                      rope_theta=50000.0, rms_norm_eps=1e-5, tie_word_embeddings=tied,
                      bos_token_id=1, eos_token_id=2, attention_bias=False, mlp_bias=False)
    model = LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():  # larger than the default init, so the logits are not all alike
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.2)
    return model


def converter_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` (convert_hf_to_gguf.py), written out independently."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _gguf_names(n_layer: int, tied: bool) -> dict[str, str]:
    names = {"model.embed_tokens.weight": "token_embd.weight",
             "model.norm.weight": "output_norm.weight"}
    if not tied:
        names["lm_head.weight"] = "output.weight"
    per = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
           "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
           "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
           "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(n_layer):
        for hf, gg in per.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"
    return names


def write_llama_gguf(path: Path, model, tokens: list[str], merges: list[str], types: list[int],
                     *, qtypes: dict[str, str] | None = None, arch: str = "llama",
                     pre: str = "smollm", tokenizer_model: str = "gpt2",
                     chat_template: str | None = CHATML, drop: tuple[str, ...] = (),
                     extra: dict[str, np.ndarray] | None = None,
                     reshape: dict[str, tuple[int, ...]] | None = None) -> dict[str, torch.Tensor]:
    """Write ``model`` (a LlamaForCausalLM) as a GGUF file as llama.cpp's converter would.

    Args:
        qtypes: GGUF tensor-name suffix (``"attn_q"``, ``"token_embd"``, ...) -> type name
            (``"Q8_0"``, ``"Q4_1"``, ``"F16"``, ...); norms and the rest are F32.
        drop: GGUF tensor names to leave out; extra: raw tensors to add; reshape: tensors to
            write with another (rows, cols) shape (corrupt files).
    Returns:
        The model's state dict with every weight replaced by what the file holds, dequantised
        and in transformers' layout: load it into the model for a reference on the same weights.
    """
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf import quants

    cfg = model.config
    qtypes = qtypes or {}
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("tiny test llama")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model(tokenizer_model)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    reference = {}
    tied = bool(cfg.tie_word_embeddings)
    state = model.state_dict()
    for hf_name, gg_name in _gguf_names(cfg.num_hidden_layers, tied).items():
        w = state[hf_name].detach().float().numpy()
        kind = next((t for suffix, t in qtypes.items() if gg_name.startswith(f"{suffix}.")
                     or f".{suffix}." in gg_name), "F32")
        if w.ndim == 1:
            kind = "F32"
        if kind == "F32":
            stored, deq = w, w
        else:
            qt = T[kind]
            stored = quants.quantize(w, qt)  # rows quantise independently of each other
            deq = quants.dequantize(stored, qt).reshape(w.shape)
        reference[hf_name] = torch.from_numpy(np.array(deq, dtype=np.float32))
        if "attn_q" in gg_name or "attn_k" in gg_name:
            n = cfg.num_attention_heads if "attn_q" in gg_name else cfg.num_key_value_heads
            stored = converter_permute(stored if kind == "F32" else
                                       stored.reshape(w.shape[0], -1), n)
        if gg_name in drop:
            continue
        if reshape and gg_name in reshape:
            stored = np.ascontiguousarray(stored.reshape(-1)[: int(np.prod(reshape[gg_name]))]
                                          .reshape(reshape[gg_name]))
        if kind in ("F32", "F16"):
            writer.add_tensor(gg_name, np.ascontiguousarray(stored))
        else:
            writer.add_tensor(gg_name, np.ascontiguousarray(stored), raw_dtype=T[kind])
    for name, arr in (extra or {}).items():  # an array, or (raw bytes, GGUF type)
        if isinstance(arr, tuple):
            writer.add_tensor(name, arr[0], raw_dtype=arr[1])
        else:
            writer.add_tensor(name, arr)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if tied:
        reference["lm_head.weight"] = reference["model.embed_tokens.weight"]
    return reference
