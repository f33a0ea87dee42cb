"""Models: where the files come from (`resolve`, `hub`), how they load (`loader`,
`precision`, `quantization`, `safety`), LoRA on top (`lora`), and the KV cache training and
inference share (`kv_cache`)."""
