"""Inference: generation (`generation`, its two engines `continuous` and `decoding`, the
shared-prefix KV cache `kv_cache`) and trained adapters in use (`adapters`)."""
