"""Property: any mapping (random keys, valid keys with wrong-typed values, nesting) either
validates or raises ConfigError, never another exception."""

from __future__ import annotations

import json
import tempfile
from enum import Enum
from pathlib import Path

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from utils.config import ConfigError, PipelineConfig, load_config, validate_config


def _fields(model: type[BaseModel]) -> dict[str, object]:
    return dict(model.model_fields)


SECTIONS = {
    name: sorted(field.annotation.model_fields)
    for name, field in _fields(PipelineConfig).items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}
NESTED_KEYS = ["input", "target", "references", "validation", "test", "seed"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**6), max_value=10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["auto", "none", "4bit", "text_to_text", "rougeL", "cosine", "always"])
)
keys = st.text(max_size=12) | st.sampled_from(NESTED_KEYS) | st.integers(-3, 3)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)


def _plain(value: object) -> object:
    """Defaults as a YAML file would hold them (sub-sections as mappings)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Enum):
        return value.value
    return value


def _section(name: str) -> st.SearchStrategy:
    fields = PipelineConfig.model_fields[name].annotation.model_fields
    known = st.sampled_from(SECTIONS[name])
    # Valid values too, so that a fair share of the generated configs validates.
    defaults = st.sampled_from(
        [
            _plain(f.get_default(call_default_factory=True))
            for f in fields.values()
            if not f.is_required()
        ]
    )
    return st.dictionaries(known | st.text(max_size=12), values | defaults, max_size=6) | values


configs = st.tuples(
    st.fixed_dictionaries(
        {}, optional={**{n: _section(n) for n in SECTIONS}, "enable_cache": values}
    ),
    st.dictionaries(keys, values, max_size=2),
).map(lambda parts: {**parts[1], **parts[0]})

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(configs)
def test_any_mapping_validates_or_raises_config_error(data: dict) -> None:
    try:
        cfg = validate_config(data, "(generated)")
    except ConfigError as e:
        assert str(e).startswith("invalid config (generated): ")
        event("rejected")
        return
    event("validated")
    assert PipelineConfig.from_json(cfg.to_json()) == cfg


@PROPERTY
@given(
    st.lists(
        st.text(max_size=30)
        | st.builds(
            "{}={}".format,
            st.sampled_from([f"{s}.{k}" for s, ks in SECTIONS.items() for k in ks]),
            st.text(max_size=15),
        ),
        max_size=4,
    )
)
def test_any_set_overrides_validate_or_raise_config_error(overrides: list[str]) -> None:
    try:
        cfg = load_config(None, overrides)
    except ConfigError as e:
        # One line that names what is wrong: the override, or (the defaults being valid)
        # a key one of the overrides set.
        message = str(e)
        assert message and "\n" not in message
        if message.startswith("--set "):
            assert any(repr(o) in message for o in overrides), message
        else:
            assert message.startswith("invalid config (defaults): "), message
            heads = [o.split("=", 1)[0].strip().split(".")[0] for o in overrides if "=" in o]
            # As written, or as repr() escapes it.
            named = [h for h in heads if h in message or repr(h)[1:-1] in message]
            assert named, (message, overrides)
        event("rejected")
        return
    event("validated")
    # What validated reads back as itself, and setting it again changes nothing.
    assert PipelineConfig.from_json(cfg.to_json()) == cfg
    dump = cfg.model_dump(mode="json")
    again = []
    for o in overrides:
        section, _, key = o.split("=", 1)[0].strip().partition(".")
        if key and "." not in key and section in dump and key in (dump[section] or {}):
            again.append(f"{section}.{key}={json.dumps(dump[section][key], ensure_ascii=False)}")
    assert load_config(None, overrides + again) == cfg


@PROPERTY
@given(configs | values)
def test_any_yaml_file_validates_or_raises_config_error(data: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(yaml.safe_dump(data))
        try:
            cfg = load_config(path)
        except ConfigError as e:
            # One line naming the file.
            assert str(path) in str(e) and "\n" not in str(e), str(e)
            event("rejected")
            return
    event("validated")
    # The file's config is the mapping's, validated (nothing dropped or added on the way).
    assert cfg == validate_config(data or {}, "(generated)")
