"""One line per config key: what it means, for the generated reference (docs/config.md).

A key's `Field(description=...)` in the schema wins over this table; either must exist
(tests/unit/test_config_reference.py). Types and defaults come from the schema itself.
`<step>` stands for each pipeline step of `remote.steps`.
"""

from __future__ import annotations

MEANINGS: dict[str, str] = {
    # model
    "model.base_model_id": "hub id or local folder of the base model",
    "model.quantization": "base weights in 4-bit NF4 (QLoRA, double quantization) or 8-bit "
    "(LLM.int8), through bitsandbytes",
    "model.dtype": "weights and autocast: auto = bf16 on GPUs and on CPUs with AVX512-BF16 or "
    "AMX, else float32",
    "model.attn_implementation": "attention kernel: auto = transformers' default, but eager for "
    "bf16 on a CPU (faster there); flash_attention_2 needs a CUDA GPU and flash_attn",
    "model.trust_remote_code": "let transformers run model code from the model's repository",
    "model.hf_token_secret": "name of a ZenML secret with a `token` key, for gated models "
    "(HF_TOKEN in the environment wins); never the token itself",
    "model.allow_pickle_weights": "allow pickle weights (.bin), which can run code when loaded; "
    "off = safetensors only",
    "model.license": "licence recorded on the ZenML model",
    "model.description": "description recorded on the ZenML model",
    # lora
    "lora.r": "rank of the LoRA matrices",
    "lora.alpha": "LoRA scaling numerator (the update is scaled by alpha / r)",
    "lora.dropout": "dropout on the LoRA input",
    "lora.target_modules": "module names to adapt; null = every linear layer of the blocks, "
    "found from the architecture",
    "lora.last_n_layers": "adapt only the top N blocks (backpropagation stops there); null = all",
    # dataset
    "dataset.name": "hub dataset for `source: hub`; the embedded files are GEM/viggo",
    "dataset.source": "embedded = the ViGGO files in data/viggo/ (sha256-checked, offline); "
    "hub = datasets.load_dataset(name); a data_dir wins over both",
    "dataset.data_dir": "local folder with train/validation/test (.jsonl, .json, .csv, "
    ".parquet); --data-dir sets it",
    "dataset.task": "data_to_text (MR -> sentence), text_to_mr (sentence -> MR) or "
    "text_to_text (any input/target pair: ROUGE and BLEU only)",
    "dataset.system_prompt": "system prompt of every example; null = the task's own",
    "dataset.enable_thinking": "passed to the chat template (Qwen3 reasons before answering "
    "when true)",
    "dataset.max_train_samples": "use only the first N training rows; null = all",
    "dataset.max_validation_samples": "validation rows used for the eval loss; null = all",
    "dataset.max_length": "longest tokenized row; longer rows are truncated (batches are padded "
    "to their own longest row)",
    "dataset.columns": "source column names; null = the task's defaults (GEM ViGGO names, "
    "input/target for text_to_text)",
    "dataset.columns.input": "column holding the model's input",
    "dataset.columns.target": "column holding the target text",
    "dataset.columns.references": "optional list column of extra references for evaluation",
    "dataset.split_ratio": "carve missing validation/test splits out of train (seeded); "
    "null = every split must exist",
    "dataset.split_ratio.validation": "fraction of train carved out as validation",
    "dataset.split_ratio.test": "fraction of train carved out as test",
    "dataset.split_ratio.seed": "seed of the carving",
    "dataset.max_malformed_fraction": "stop when more than this fraction of a split is "
    "malformed (empty or unparsable rows are skipped and counted)",
    "dataset.train_fraction": "seeded share of the (cleaned) training rows kept, before "
    "max_train_samples (smaller shares are subsets of larger ones)",
    "dataset.dedupe": "drop exact duplicate training rows (listed in the data report)",
    "dataset.drop_unfaithful": "drop training rows whose reference fails the slot checker "
    "(ViGGO tasks)",
    "dataset.drop_test_leaks": "drop training rows whose input is, or nearly is, a test input",
    "dataset.near_duplicate_similarity": "word-set Jaccard from which two inputs count as "
    "near-duplicates (leak check)",
    "dataset.augment": "training-only augmentations: substitute (swap a quoted slot value in MR "
    "and sentence), permute (reorder the MR's slots, data_to_text)",
    "dataset.augment_factor": "new augmented rows per training row",
    "dataset.augment_seed": "seed of the augmentation draws",
    "dataset.synthetic": "round-trip-verified synthetic training rows: new MRs from the "
    "training distribution, sentences from a generator version, kept when the slot checker "
    "and a parser version agree; null = off",
    "dataset.synthetic.generator": "the data_to_text model version that writes the sentences",
    "dataset.synthetic.generator.model": "its model name in the Model Control Plane",
    "dataset.synthetic.generator.version": "its stage (staging, production, latest), number "
    "or name",
    "dataset.synthetic.parser": "the text_to_mr model version that reads each sentence back as "
    "an MR (kept only when it equals the composed one)",
    "dataset.synthetic.parser.model": "its model name in the Model Control Plane",
    "dataset.synthetic.parser.version": "its stage (staging, production, latest), number or name",
    "dataset.synthetic.rows": "MRs composed (kept rows: those passing both checks)",
    "dataset.synthetic.seed": "seed of the composition",
    # training
    "training.max_steps": "optimizer steps to train",
    "training.learning_rate": "peak learning rate",
    "training.batch_size": "rows per device per step",
    "training.gradient_accumulation_steps": "batches per optimizer step",
    "training.max_batch_tokens": "a padded batch of more tokens runs as row slices (same "
    "gradients, less activation memory); null = whole batches",
    "training.warmup_ratio": "fraction of the steps spent warming up the learning rate",
    "training.weight_decay": "AdamW weight decay",
    "training.lr_scheduler": "learning-rate schedule after warm-up",
    "training.logging_steps": "log loss and learning rate every N steps",
    "training.eval_steps": "eval loss every N steps; null = once, at the end",
    "training.gradient_checkpointing": "recompute activations in backward: less memory, more "
    "compute",
    "training.group_by_length": "batch rows of similar length (less padding)",
    "training.row_order": "random (shuffled, length-grouped) or distinct_first (every distinct "
    "input once before any twice)",
    "training.packing": "concatenate rows into padding-free batches (attention kept within rows)",
    "training.share_prompt_prefix": "run the prompt prefix a batch shares once, through the KV "
    "cache (same loss); off under packing, checkpointing, sliding windows",
    "training.seed": "seed of the LoRA initialisation and the data order",
    "training.save_steps": "checkpoint every N steps for resuming; null = never",
    "training.resume": "auto = continue a matching checkpoint; always = fail without one "
    "(--resume); never = start over",
    "training.checkpoint_dir": "root of the checkpoint folders; null = $LORA_CHECKPOINT_DIR, "
    "else ~/.cache/viggo-lora/checkpoints",
    "training.validation_steps": "generative validation (decode and score) every N steps; "
    "null = off",
    "training.validation_samples": "distinct validation inputs each check decodes",
    "training.select_best": "keep the weights of the best validation check, not the last step's",
    # accelerate
    "accelerate.num_processes": "training processes over all machines; 1 = no launcher",
    "accelerate.strategy": "ddp (every rank holds the model) or fsdp (parameters sharded)",
    "accelerate.fsdp": "FSDP options, used with `strategy: fsdp`",
    "accelerate.fsdp.version": "2 = FSDP2 (fully_shard); 1 = FlatParameter FSDP",
    "accelerate.fsdp.reshard_after_forward": "free gathered weights after each block's forward "
    "(ZeRO-3-like); false keeps them until backward",
    "accelerate.fsdp.wrap_layer": "module class each FSDP unit wraps; null = the decoder layer "
    "class of the architecture",
    "accelerate.fsdp.cpu_ram_efficient_loading": "only rank 0 of each machine reads the weights",
    "accelerate.fsdp.offload_params": "keep parameter shards in host memory between uses",
    "accelerate.fsdp.state_dict_type": "format of the Trainer's checkpoints under FSDP",
    "accelerate.mixed_precision": "auto = follows model.dtype; an explicit value must say the same",
    "accelerate.num_machines": "machines of a multi-node run; null = from the environment, else 1",
    "accelerate.machine_rank": "this machine's rank; null = from the environment, else 0",
    "accelerate.main_process_ip": "address of machine 0; null = from the environment",
    "accelerate.main_process_port": "port of machine 0; null = from the environment (29500)",
    # evaluation
    "evaluation.split": "split the models are scored on",
    "evaluation.max_samples": "score a seeded random subset of N rows; null = the whole split",
    "evaluation.batch_size": "rows decoded together (at most: see memory_budget_mb)",
    "evaluation.memory_budget_mb": "MiB the decode's KV cache (and the prefill memo of sampled "
    "candidates) may hold beside the weights: the batch shrinks to what fits, a budget short "
    "of one row is refused; null = no bound; ignored by vllm",
    "evaluation.max_new_tokens": "generation limit; null = 1.25 x the longest training target + 8",
    "evaluation.engine": "continuous (finished rows leave the batch, waiting prompts take their "
    "place), generate (transformers' generate) or vllm (vLLM on a GPU, "
    "requirements-vllm.txt)",
    "evaluation.stop_at_newline": "stop each answer at its first line break",
    "evaluation.one_row_kernel": "native = one-row decode steps (serving one request) on "
    "PyTorch's own CPU matmul, ~1.7x faster per token than oneDNN's but not bit-identical",
    "evaluation.draft_tokens": "tokens each row guesses per decode step when few rows decode "
    "(served requests): n-grams of its prompt and of earlier outputs, kept only where the "
    "model picks them itself, so the same outputs in fewer steps; 0 = off; continuous engine",
    "evaluation.rerank": "slot-aware decoding: extra candidates for outputs that fail the "
    "task's check, fewest errors wins; null = greedy only",
    "evaluation.rerank.method": "sample (drawn in the continuous engine) or beam (transformers' "
    "beam search, slow)",
    "evaluation.rerank.candidates": "most candidates per input (the beam width for beam)",
    "evaluation.rerank.temperature": "sampling temperature",
    "evaluation.rerank.top_p": "nucleus sampling mass",
    "evaluation.rerank.select": "among the fewest-error candidates: score (highest mean "
    "log-probability) or consensus (most agreement with the others)",
    "evaluation.rerank.consensus_metric": "the agreement consensus sums: rougeL, bleu "
    "(sentence BLEU) or chrf against each other candidate",
    "evaluation.rerank.only_failing": "candidates only for failing inputs; null = true for "
    "score, false for consensus",
    "evaluation.rerank.stop_after_passing": "a failing input draws waves of two until "
    "this many of its candidates are error-free (1 = cheapest); null = all candidates; "
    "the best by select wins",
    "evaluation.rerank.apply_to": "finetuned (the base model stays greedy) or both",
    "evaluation.rerank.seed": "seed of the sampled candidates",
    "evaluation.rerank.together_rows": "up to this many rows (inputs x (1 + candidates)), "
    "candidates decode beside greedy, not after it (same outputs; 0 = never)",
    "evaluation.constrain": "grammar-constrained decoding: mr (text_to_mr: well-formed MRs, "
    "values from the sentence or the slot's vocabulary), {regex: ...} or {json_schema: ...} "
    "(any task); null = off (docs/evaluation.md)",
    "evaluation.constrain.regex": "every answer matches this regex (Rust syntax: no "
    "look-around or back-references)",
    "evaluation.constrain.json_schema": "every answer is JSON valid against this schema",
    # promotion
    "promotion.metric": "metric that decides promotion (its direction comes from the metric "
    "registry: ser is lower-is-better)",
    "promotion.min_improvement": "margin by which the candidate must beat base and the current "
    "stage holder",
    "promotion.stage": "stage a winning version moves to (staging or production)",
    "promotion.enabled": "false = record the decision without moving a stage",
    # serving
    "serving.max_inputs_per_request": "more inputs in one request get a 413",
    "serving.max_input_chars": "a longer input gets a 413",
    "serving.max_batch_inputs": "inputs of concurrent requests decoded together (in flight)",
    "serving.continuous_batching": "requests join the running decode and are answered as "
    "soon as their own outputs are final; false = batch by batch",
    "serving.batch_window_ms": "how long the first request of a batch waits for others",
    "serving.max_queued_inputs": "inputs waiting beyond which a request gets a 503 with "
    "Retry-After",
    "serving.request_timeout_s": "seconds (queue + decoding) after which a request gets a 504",
    "serving.record": "which /invoke requests also become a pipeline run: none, sampled (one in "
    "record_every, off the request's path) or every (ZenML's own per-request run)",
    "serving.record_every": "with record: sampled, one request in this many is recorded",
    "serving.stats_every_s": "seconds between writes of the service's counters to the "
    "version's metadata (serving_stats); 0 = never",
    "serving.auth": "require a bearer key (generated at deploy time); false = anyone who can "
    "reach the port may call the model",
    "serving.auth_secret": "ZenML secret whose auth_key holds the service's key (instead of a "
    "generated one)",
    "serving.cors_origins": "origins a browser may call the service from; empty = none",
    "serving.torch_threads": "torch threads of the service process; null = one per core",
    "serving.rerank": "use the served version's evaluation.rerank; false = greedy only",
    "serving.port": "preferred port of the local deployer (a free one if taken)",
    "serving.startup_timeout": "seconds `serve` waits for the service to become healthy",
    # pipeline
    "enable_cache": "reuse ZenML's cached step outputs when inputs are unchanged (--no-cache)",
    # remote
    "remote.docker": "the image remote orchestrators and step operators run (ZenML DockerSettings)",
    "remote.docker.dockerfile": "Dockerfile to build (relative to the project root)",
    "remote.docker.build_context_root": "build context of that Dockerfile",
    "remote.docker.parent_image": "image to build on when no dockerfile is given",
    "remote.docker.skip_build": "use the image as it is (it must contain the code)",
    "remote.docker.target_repository": "repository name in the container registry",
    "remote.step_operator": "the stack's step operator for steps with `step_operator: true`",
    "remote.settings": "pipeline-level component settings, e.g. `orchestrator.kubernetes: {...}`",
    "remote.steps": "per-step options, one entry per pipeline step",
    "remote.steps.<step>": "options of one step (synthesize_data, prepare_data, "
    "finetune, evaluate_base, evaluate_finetuned, promote)",
    "remote.steps.<step>.resources": "ZenML ResourceSettings of the step",
    "remote.steps.<step>.resources.cpu_count": "CPUs the step asks for",
    "remote.steps.<step>.resources.gpu_count": "GPUs the step asks for",
    "remote.steps.<step>.resources.memory": "memory the step asks for, e.g. 32GB",
    "remote.steps.<step>.retry": "retries of the step (ZenML StepRetryConfig)",
    "remote.steps.<step>.retry.max_retries": "retries after a failure; 0 = fail at once",
    "remote.steps.<step>.retry.delay": "seconds before the first retry",
    "remote.steps.<step>.retry.backoff": "factor on the delay after each retry",
    "remote.steps.<step>.step_operator": "run the step on the step operator",
    "remote.steps.<step>.settings": "component settings of this step",
    # tracking
    "tracking.required": "a stack's experiment tracker that cannot be used stops the run; "
    "false = go on without it, with a warning",
    # sweep
    "sweep.grid": "`run.py sweep`: dotted key -> values to try",
    "sweep.eval_samples": "each variant's seeded evaluation subset; null = the config's own set",
    "sweep.final_top_k": "re-evaluate the best K variants on the config's own set; 0 = none",
}
