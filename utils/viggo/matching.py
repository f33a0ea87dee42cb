"""Text matching for slot checks: phrase regexes, and a sentence whose matched spans are
used up (masked) so that one mention never counts twice."""

from __future__ import annotations

import re
import unicodedata

_SEP = r"[\s\-/]+"
_OPT_SEP = r"[\s\-/]*"


def phrase_rx(*phrases: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    """Alternation of phrases; a space in a phrase matches any run of space/-/ ."""
    body = "|".join(
        p.replace(" ?", "\0").replace(" ", _SEP).replace("\0", _OPT_SEP) for p in phrases
    )
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", flags)


def literal_rx(value: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    """Tokens of ``value`` in order, any punctuation (or none) between them."""
    tokens = re.findall(r"[^\W_]+", fold(value))
    body = r"[\W_]*".join(re.escape(t) for t in tokens)
    return re.compile(rf"(?<!\w){body}(?!\w)", flags)


def fold(text: str) -> str:
    """Strip accents and unify quotes/dashes, so rules see one spelling."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.translate(str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-"}))


class Text:
    """A sentence whose matched spans get blanked, so one mention is used only once."""

    def __init__(self, sentence: str) -> None:
        self.text = fold(sentence)

    def find(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        return list(pattern.finditer(self.text))

    def take(self, pattern: re.Pattern[str]) -> bool:
        matches = self.find(pattern)
        for m in matches:
            self.mask(m.start(), m.end())
        return bool(matches)

    def mask(self, start: int, end: int) -> None:
        self.text = self.text[:start] + " " * (end - start) + self.text[end:]
