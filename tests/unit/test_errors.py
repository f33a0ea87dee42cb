"""The one helper every command and check uses to turn an exception into one line."""

from utils.core.errors import one_line


def test_one_line_collapses_names_empty_messages_and_cuts() -> None:
    assert one_line(ValueError("bad value\n  for key\tlora.r")) == "bad value for key lora.r"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(OSError("disk full"), with_type=True) == "OSError: disk full"
    cut = one_line(RuntimeError("x" * 500), limit=300)
    assert len(cut) == 300 and cut.endswith("...")
    assert one_line(RuntimeError("short"), limit=300) == "short"
