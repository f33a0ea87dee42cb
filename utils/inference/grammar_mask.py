"""Grammar-constrained token choice: each decode row follows its grammar through an
llguidance matcher, and its logits are masked to the tokens the grammar allows next.

The mask is applied where a token is picked (`TokenPicker` in the continuous engine, a
logits processor in transformers' generate), row by row, so batching, refills and
sampling work as without it. A token is allowed when the text so far plus its bytes can
still be completed into a sentence of the grammar, and a stop token (EOS) once the grammar
accepts: the most likely allowed token is the unconstrained choice whenever that choice
stays inside the grammar, so constrained greedy equals unconstrained greedy wherever the
grammar accepts the unconstrained output.

Costs (SmolLM2's 49k vocabulary, 2-core CPU): the tokenizer's token trie ~0.5 s, once per
tokenizer; a matcher ~1.5-6 ms per distinct grammar (copied for the rows sharing it);
checking that a greedy row's own choice is allowed ~4 us; a full mask (rows whose choice
is not, and sampled rows) ~0.2 ms to compute plus a pass over the row's logits.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections import Counter
from typing import Any

import llguidance
import llguidance.hf
import numpy as np
import torch

logger = logging.getLogger(__name__)

_TOKENIZERS: weakref.WeakKeyDictionary[Any, dict[tuple[int, ...], Any]] = (
    weakref.WeakKeyDictionary()
)
_EXECUTOR: list[Any] = []


def ll_tokenizer(tokenizer: Any, eos_ids: list[int]) -> Any:
    """llguidance's view of `tokenizer` with `eos_ids` ending a row (once per pair)."""
    per_eos = _TOKENIZERS.setdefault(tokenizer, {})
    key = tuple(sorted(eos_ids))
    if key not in per_eos:
        per_eos[key] = llguidance.hf.from_tokenizer(tokenizer, eos_token=list(key))
    return per_eos[key]


def grammar_problem(grammar: str) -> str | None:
    """Why llguidance cannot compile `grammar` (one line); None when it can."""
    error = llguidance.LLMatcher.validate_grammar(grammar)
    if not error:
        return None
    # Messages end with the offending source lines; the cause is the "error:" line when
    # there is one, else the first, without its place in the grammar we wrote around it.
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    causes = [line for line in lines if line.startswith("error:")]
    return re.sub(r"^at \d+\(\d+\): ", "", causes[0] if causes else lines[0])


def _executor() -> Any:
    if not _EXECUTOR:
        _EXECUTOR.append(llguidance.LLExecutor())
    return _EXECUTOR[0]


def allowed_tokens(bitmask: torch.Tensor, vocab: int) -> torch.Tensor:
    """(rows, vocab) bools from llguidance's (rows, words) int32 bitmask (bit j of word w:
    token 32w + j); ids past the tokenizer's vocabulary (a model's padded embedding rows)
    are never allowed."""
    # numpy unpacks bits ~100x faster than torch shifts on a CPU.
    bits = np.unpackbits(bitmask.numpy().view(np.uint8), axis=1, bitorder="little")
    allowed = torch.from_numpy(bits).view(torch.bool)
    if allowed.shape[1] < vocab:
        allowed = torch.nn.functional.pad(allowed, (0, vocab - allowed.shape[1]))
    return allowed[:, :vocab]


class RowGrammars:
    """The grammar of each decode row (`grammars[row]`, None: unconstrained), its matcher
    started when the row first picks a token and dropped when it finishes."""

    def __init__(self, tokenizer: Any, eos_ids: list[int], grammars: list[str | None]) -> None:
        self.grammars = grammars
        self.ll_tokenizer = ll_tokenizer(tokenizer, eos_ids)
        self.eos = sorted(set(eos_ids))
        self._matchers: dict[int, Any] = {}
        # One compile per distinct grammar; rows sharing it start from a copy. A compiled
        # grammar holds ~1 MiB (its lexer's states): with text_to_mr every input has its
        # own, so one is dropped once no unfinished row needs it (1,083 test inputs kept
        # ~1 GiB to the end of the decode).
        self._compiled: dict[str, Any] = {}
        self._unfinished = Counter(g for g in grammars if g is not None)
        self._finished: set[int] = set()

    def constrained(self, row: int) -> bool:
        return self.grammars[row] is not None

    def _matcher(self, row: int) -> Any:
        matcher = self._matchers.get(row)
        if matcher is None:
            grammar = self.grammars[row]
            assert grammar is not None
            fresh = self._compiled.get(grammar)
            if fresh is None:
                fresh = self._compiled[grammar] = llguidance.LLMatcher(
                    self.ll_tokenizer, grammar, log_level=0
                )
            matcher = self._matchers[row] = fresh.deep_copy()
        return matcher

    def allowed(self, rows: list[int], vocab: int) -> torch.Tensor:
        """(rows, vocab) bools: the tokens each row's grammar allows next (all for rows
        without a grammar)."""
        todo = [(self._matcher(row), i) for i, row in enumerate(rows) if self.constrained(row)]
        words = (self.ll_tokenizer.vocab_size + 31) // 32
        bitmask = torch.zeros((len(rows), words), dtype=torch.int32)
        # What `llguidance.torch.fill_next_token_bitmask_par` does, without importing that
        # module (it compiles a torch kernel at import).
        _executor().unsafe_compute_mask_ptr(todo, bitmask.data_ptr(), words * 4, len(rows))
        allowed = allowed_tokens(bitmask, vocab)
        for matcher, i in todo:
            if matcher.is_error():
                # Cannot happen for tokens it allowed; stop the row rather than let an
                # all-forbidden row pick token 0.
                logger.warning("grammar matcher failed, row stopped: %s", matcher.get_error())
                allowed[i, self.eos] = True
        allowed[[i for i, row in enumerate(rows) if not self.constrained(row)]] = True
        return allowed

    def masked(self, logits: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """`logits` (one line per entry of `rows`) with the tokens each row's grammar
        forbids next at -inf (a new tensor)."""
        allowed = self.allowed(rows, logits.shape[-1]).to(logits.device)
        return torch.where(allowed, logits, float("-inf"))

    def refused(self, tokens: list[int], rows: list[int]) -> list[int]:
        """Positions `i` whose row's grammar does not allow `tokens[i]` next."""
        return [
            i
            for i, (row, token) in enumerate(zip(rows, tokens, strict=True))
            if self.constrained(row) and self._matcher(row).validate_tokens([token]) != 1
        ]

    def greedy(self, logits: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """Each row's most likely allowed token. A row whose most likely token is allowed
        keeps it without a mask (a few microseconds: with a model that writes the grammar's
        language, most rows at most steps); the others take the best of the tokens their
        mask allows (a gather, not a pass over the whole batch's logits)."""
        tokens = logits.argmax(-1)
        wrong = self.refused(tokens.tolist(), rows)
        if wrong:
            allowed = self.allowed([rows[i] for i in wrong], logits.shape[-1])
            for i, ok in zip(wrong, allowed, strict=True):
                # numpy's nonzero: ~50x faster than torch's on a CPU.
                ids = torch.from_numpy(np.flatnonzero(ok.numpy())).to(logits.device)
                # Ties go to the lowest id, as argmax over the masked row would.
                tokens[i] = ids[logits[i, ids].argmax()]
        return tokens

    def advance(self, rows: list[int], tokens: list[int]) -> None:
        """Each row's matcher takes the token the row picked."""
        for row, token in zip(rows, tokens, strict=True):
            if self.constrained(row):
                self._matcher(row).consume_token(token)

    def forget(self, row: int) -> None:
        """`row` is done: its matcher goes, and its grammar's compile with the last row of
        that grammar."""
        self._matchers.pop(row, None)
        grammar = self.grammars[row]
        if grammar is None or row in self._finished:
            return
        self._finished.add(row)
        self._unfinished[grammar] -= 1
        if not self._unfinished[grammar]:
            del self._unfinished[grammar]
            self._compiled.pop(grammar, None)
