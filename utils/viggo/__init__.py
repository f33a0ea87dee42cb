"""ViGGO meaning representations: the grammar (`grammar`), the slot error rate
(`slot_errors`), and the vocabularies and lexicons those rules match (`vocabulary`,
`lexicon`, `patterns`, `matching`)."""

from utils.viggo.grammar import (
    BOOLEAN_SLOTS,
    DIALOGUE_ACTS,
    LIST_SLOTS,
    SLOTS,
    MeaningRepresentation,
    MRParseError,
    format_mr,
    parse_mr,
    try_parse_mr,
)
from utils.viggo.slot_errors import SlotErrorCounts, slot_errors, slot_report

__all__ = [
    "BOOLEAN_SLOTS",
    "DIALOGUE_ACTS",
    "LIST_SLOTS",
    "SLOTS",
    "MRParseError",
    "MeaningRepresentation",
    "SlotErrorCounts",
    "format_mr",
    "parse_mr",
    "slot_errors",
    "slot_report",
    "try_parse_mr",
]
