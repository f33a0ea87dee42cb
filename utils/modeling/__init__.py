"""Models: where the files come from (`resolve`, `hub`), how they load (`loader`,
`precision`, `quantization`, `safety`), and LoRA on top (`lora`)."""
