"""Torch module classes the opcheck library knows, and the weights their references need, without
importing torch: what tells, before any reference is loaded, that a module of a dump without its
weights folder cannot be checked (``CaseIndex.lacks_weights``)."""

from __future__ import annotations

HF_RMS_NORMS = (
    "LlamaRMSNorm", "Qwen2RMSNorm", "Qwen2MoeRMSNorm", "Qwen3RMSNorm", "Qwen3MoeRMSNorm", "MistralRMSNorm",
    "MixtralRMSNorm", "Phi3RMSNorm", "DeepseekV2RMSNorm", "DeepseekV3RMSNorm", "GraniteRMSNorm",
    "Olmo2RMSNorm", "T5LayerNorm",
)  # fmt: skip
"""Hugging Face RMSNorm classes computing ``weight * x / sqrt(mean(x²) + variance_epsilon)``."""

GEMMA_RMS_NORMS = ("GemmaRMSNorm", "Gemma2RMSNorm", "Gemma3RMSNorm", "RecurrentGemmaRMSNorm")
"""Gemma's RMSNorm classes: ``(1 + weight) * x / sqrt(mean(x²) + eps)``."""

ROTARY_EMBEDDINGS = (
    "LlamaRotaryEmbedding", "Qwen2RotaryEmbedding", "Qwen2MoeRotaryEmbedding", "Qwen3RotaryEmbedding",
    "Qwen3MoeRotaryEmbedding", "MistralRotaryEmbedding", "MixtralRotaryEmbedding", "GemmaRotaryEmbedding",
    "Gemma2RotaryEmbedding", "GraniteRotaryEmbedding", "Olmo2RotaryEmbedding", "Phi3RotaryEmbedding",
)  # fmt: skip
"""Hugging Face rotary classes: ``(x, position_ids) -> (cos, sin)`` from the ``inv_freq`` buffer."""

REQUIRED_WEIGHTS: dict[str, tuple[str, ...]] = {
    "Linear": ("weight",),
    "Embedding": ("weight",),
    **dict.fromkeys(HF_RMS_NORMS + GEMMA_RMS_NORMS, ("weight",)),
    **dict.fromkeys(ROTARY_EMBEDDINGS, ("inv_freq",)),
}
"""The module attributes (parameters, buffers) a class's reference cannot do without; the
registrations of ``torch_modules`` take theirs from here."""
