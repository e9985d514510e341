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
        mlp_down: attribute of the MLP holding its output projection (its input is `mlp_hidden`).
        final_norm: path of the final norm from the *CausalLM module.
        family: human-readable family name for errors and reports.
        attn_post_norm: attribute of a layer holding a norm applied to the attention output
            *before* it is added to the residual stream (Gemma 2/3), or None (pre-norm only).
        mlp_post_norm: the same for the MLP output.
    """

    layers: str
    attn: str
    o_proj: str
    mlp: str
    mlp_down: str
    final_norm: str
    family: str
    attn_post_norm: str | None = None
    mlp_post_norm: str | None = None


def _llama_like(family: str) -> ArchSpec:
    return ArchSpec("model.layers", "self_attn", "o_proj", "mlp", "down_proj", "model.norm", family)


def _gemma_post_norm(family: str) -> ArchSpec:
    return ArchSpec("model.layers", "self_attn", "o_proj", "mlp", "down_proj", "model.norm", family,
                    attn_post_norm="post_attention_layernorm", mlp_post_norm="post_feedforward_layernorm")


ARCHITECTURES: dict[str, ArchSpec] = {
    "gpt2": ArchSpec("transformer.h", "attn", "c_proj", "mlp", "c_proj", "transformer.ln_f", "GPT-2"),
    "llama": _llama_like("Llama family"),
    "mistral": _llama_like("Llama family"),
    "qwen2": _llama_like("Llama family"),
    "qwen3": _llama_like("Llama family"),
    "gemma": _llama_like("Gemma"),
    "gemma2": _gemma_post_norm("Gemma 2"),
    "gemma3_text": _gemma_post_norm("Gemma 3"),
    # Gemma3ForConditionalGeneration (multimodal checkpoints, model_type "gemma3"): the same text
    # decoder one level down, beside the vision tower; the unembedding is still the model's lm_head.
    "gemma3": ArchSpec("model.language_model.layers", "self_attn", "o_proj", "mlp", "down_proj",
                       "model.language_model.norm", "Gemma 3 (multimodal)",
                       attn_post_norm="post_attention_layernorm", mlp_post_norm="post_feedforward_layernorm"),
    "gpt_neox": ArchSpec("gpt_neox.layers", "attention", "dense", "mlp", "dense_4h_to_h",
                         "gpt_neox.final_layer_norm", "GPT-NeoX"),
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
        if getattr(config, "text_config", None) is not None:  # multimodal: the text decoder's geometry
            config = config.text_config
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

    def mlp_down(self, layer: int) -> Any:
        return getattr(self.mlp(layer), self.arch.mlp_down)

    def attn_post_norm(self, layer: int) -> Any | None:
        """The norm between the attention output and the residual stream (Gemma 2/3), else None."""
        name = self.arch.attn_post_norm
        return getattr(self.layers()[layer], name) if name else None

    def mlp_post_norm(self, layer: int) -> Any | None:
        name = self.arch.mlp_post_norm
        return getattr(self.layers()[layer], name) if name else None

    def final_norm(self) -> Any:
        return _get(self.model, self.arch.final_norm)

    def unembed(self) -> Any:
        return self.model.get_output_embeddings()

    @property
    def post_norm(self) -> bool:
        """Whether attention output passes a norm before the residual stream (see interventions)."""
        return self.arch.attn_post_norm is not None

    @property
    def parallel_residual(self) -> bool:
        """GPT-NeoX's parallel block: the MLP reads resid_pre, not resid_pre + attn_out."""
        return bool(getattr(self.model.config, "use_parallel_residual", False)) and self.model_type == "gpt_neox"

    def describe(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "family": self.arch.family,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "post_norm": self.post_norm,
        }


def _first(config: Any, *names: str) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    raise UnsupportedArchitecture(f"config {type(config).__name__} has none of {names}")
