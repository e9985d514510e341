"""Where each architecture keeps its layers, attention modules and output projections.

Claims never reach into a model's modules: they ask an adapter. Supporting a new architecture
means adding one `ArchSpec` row, nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


from icltest.errors import UnsupportedArchitecture  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class ArchSpec:
    """Dotted attribute paths from the *CausalLM module to the parts icltest hooks.

    Attributes:
        layers: path of the decoder layer list.
        attn: attribute of a layer holding the self-attention module (its forward returns
            `(output, attention_probs)`; the probabilities are per *query* head, GQA included).
        o_proj: attribute of the attention module holding the output projection. Its input,
            split into `n_heads` chunks of `head_dim`, is the per-head output ("z").
        mlp: attribute of a layer holding the MLP.
        family: human-readable family name for errors and reports.
    """

    layers: str
    attn: str
    o_proj: str
    mlp: str
    family: str


_LLAMA_LIKE = ArchSpec("model.layers", "self_attn", "o_proj", "mlp", "Llama family")
ARCHITECTURES: dict[str, ArchSpec] = {
    "gpt2": ArchSpec("transformer.h", "attn", "c_proj", "mlp", "GPT-2"),
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": ArchSpec("model.layers", "self_attn", "o_proj", "mlp", "Gemma"),
    "gemma2": ArchSpec("model.layers", "self_attn", "o_proj", "mlp", "Gemma 2"),
    "gemma3_text": ArchSpec("model.layers", "self_attn", "o_proj", "mlp", "Gemma 3"),
    "gpt_neox": ArchSpec("gpt_neox.layers", "attention", "dense", "mlp", "GPT-NeoX"),
}


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Adapter:
    """Uniform view of one loaded model: layer count, head geometry and hook points."""

    model: Any
    arch: ArchSpec
    model_type: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int

    @classmethod
    def for_model(cls, model: Any) -> "Adapter":
        """Build the adapter for a transformers *ForCausalLM model.

        Raises:
            UnsupportedArchitecture: no row in ARCHITECTURES for the model's type.
        """
        config = model.config
        model_type = getattr(config, "model_type", "?")
        if model_type == "gemma3" and hasattr(config, "text_config"):
            model_type, config = "gemma3_text", config.text_config
        arch = ARCHITECTURES.get(model_type)
        if arch is None:
            supported = ", ".join(sorted(ARCHITECTURES))
            raise UnsupportedArchitecture(
                f"model_type '{model_type}' ({type(model).__name__}) is not supported; "
                f"supported model types: {supported}. Adding one is a single ArchSpec row in "
                "icltest/models/adapters.py."
            )
        n_heads = int(_first(config, "num_attention_heads", "n_head"))
        hidden = int(_first(config, "hidden_size", "n_embd"))
        n_kv = int(getattr(config, "num_key_value_heads", None) or n_heads)
        head_dim = int(getattr(config, "head_dim", None) or hidden // n_heads)
        n_layers = int(_first(config, "num_hidden_layers", "n_layer"))
        return cls(model, arch, model_type, n_layers, n_heads, n_kv, head_dim)

    def layers(self) -> list[Any]:
        return list(_get(self.model, self.arch.layers))

    def attention(self, layer: int) -> Any:
        return getattr(self.layers()[layer], self.arch.attn)

    def o_proj(self, layer: int) -> Any:
        return getattr(self.attention(layer), self.arch.o_proj)

    def mlp(self, layer: int) -> Any:
        return getattr(self.layers()[layer], self.arch.mlp)

    def describe(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "family": self.arch.family,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
        }


def _first(config: Any, *names: str) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    raise UnsupportedArchitecture(f"config {type(config).__name__} has none of {names}")
