"""Data: raw splits (`sources`), task rows (`rows`), prompts (`prompts`), and the prepared
splits training and evaluation read (`prepare`, `jsonl`)."""
