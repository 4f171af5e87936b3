"""Every parser of user text, fed anything (hypothesis): it parses to a valid value or raises the one-line
ValueError, never a traceback of another kind."""

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facegen.augment import POLICIES, parse_policy
from facegen.cli_edit import _number, _parse_range, parse_named
from facegen.config import SECTIONS, Config, config_from_dict, read_config_file
from facegen.data.sources import parse_attributes
from facegen.losses import parse_label_noise
from facegen.metrics import METRICS, parse_metrics
from facegen.sample import MAX_SEED, MAX_SEEDS, parse_seeds
from facegen.sweep import parse_vary

# Text that looks like what people type, and anything at all.
NEAR = st.text(alphabet="0123456789-,.=()[] eE+abcdfilmnorstuxy_\"'#\n\t", max_size=40)
ANY = st.text(max_size=60)
TEXT = st.one_of(NEAR, ANY)
# Derandomised, so that CI is repeatable; explore further with --hypothesis-seed=random.
EXAMPLES = settings(max_examples=300, deadline=None, derandomize=True, database=None)


def _one_line_or(parse, text):
    """Run parse(text); a ValueError must be one line. Returns the value, or None after an error."""
    try:
        return parse(text)
    except ValueError as err:
        assert "\n" not in str(err).strip() and str(err).strip(), repr(str(err))
        return None


@EXAMPLES
@given(TEXT)
def test_seed_lists(text):
    seeds = _one_line_or(parse_seeds, text)
    if seeds is not None:
        assert seeds and len(seeds) <= MAX_SEEDS and all(isinstance(s, int) and 0 <= s <= MAX_SEED for s in seeds)


@EXAMPLES
@given(st.sampled_from([f"{s}.{f}" for s, cls in SECTIONS.items() for f in cls.__dataclass_fields__] + ["train.nope", "x.y", "train"]),
       TEXT)
def test_set_values(key, value):
    cfg = _one_line_or(lambda v: config_from_dict({}, [f"{key}={v}"]), value)
    assert cfg is None or isinstance(cfg, Config)


@EXAMPLES
@given(TEXT)
def test_set_syntax(text):
    cfg = _one_line_or(lambda t: config_from_dict({}, [t]), text)
    assert cfg is None or isinstance(cfg, Config)


@EXAMPLES
@given(TEXT)
def test_label_noise_specs(text):
    noise = _one_line_or(parse_label_noise, text)
    if noise is not None:
        assert noise.kind in ("none", "smooth", "flip", "beta") and math.isfinite(noise.a) and math.isfinite(noise.b)


@EXAMPLES
@given(st.one_of(TEXT, st.lists(st.sampled_from([*POLICIES, "colour", ""]), max_size=4).map(",".join)))
def test_diffaugment_policies(text):
    policy = _one_line_or(parse_policy, text)
    assert policy is None or set(policy) <= set(POLICIES)


@EXAMPLES
@given(st.one_of(TEXT, st.lists(st.sampled_from([*METRICS, "FID", "lpips", ""]), max_size=4).map(",".join)))
def test_metric_lists(text):
    names = _one_line_or(parse_metrics, text)
    assert names is None or (names and set(names) <= set(METRICS))


@EXAMPLES
@given(TEXT)
def test_vary_specs(text):
    parsed = _one_line_or(parse_vary, text)
    if parsed is not None:
        key, values = parsed
        assert "." in key and values and all(values) and len(set(values)) == len(values)


@EXAMPLES
@given(TEXT, st.sampled_from(["--add", "--from-seeds"]))
def test_named_values_and_numbers(text, flag):
    named = _one_line_or(lambda t: parse_named(t, flag), text)
    if named is not None:
        assert all(part.strip() for part in named)
        value = _one_line_or(lambda t: _number(t, flag), named[1])
        assert value is None or isinstance(value, float)
    assert _one_line_or(_parse_range, text) is None or "," in text


# Attribute files: the official layout (count, names, rows) and Kaggle's CSV, damaged in any way.
ROW = st.tuples(st.sampled_from(["000001.jpg", "000002.jpg", "x.jpg", ""]), st.lists(st.sampled_from(["1", "-1", "0", "2", "a", ""]), max_size=4))


@EXAMPLES
@given(st.one_of(TEXT, st.lists(ROW, max_size=5).map(lambda rows: "2\nSmiling Male\n" + "\n".join(f"{n} {' '.join(v)}" for n, v in rows))),
       st.booleans())
def test_attribute_files(text, csv):
    parsed = _one_line_or(lambda t: parse_attributes(t, "list_attr_celeba.txt", csv), text)
    if parsed is not None:
        rows, names = parsed
        assert all(len(values) == len(names) and set(values) <= {1, -1} for values in rows.values())


# TOML presets and config files: any text in a .toml file.
TOML_LIKE = st.one_of(ANY, st.lists(st.tuples(st.sampled_from(["[data]", "[model]", "[train]", "[loss]", "[nope]", ""]),
                                              st.sampled_from(["resolution", "z_dim", "lr_g", "kind", "beta", "x", "extends"]),
                                              st.sampled_from(["64", "33", "-1", "\"bce\"", "1e-4", "true", "[1, 2]", "\"", "nan", "inf",
                                                               "\"fast32\"", "\"demo\""])),
                                    max_size=4).map(lambda lines: "\n".join(f"{h}\n{k} = {v}" for h, k, v in lines)))


@EXAMPLES
@given(st.one_of(TOML_LIKE, st.sampled_from(["[1]", "3", "null", "{\"train\": 1}", "{\"train\": {\"lr_g\": \"x\"}}"])),
       st.sampled_from([".toml", ".json"]))
def test_config_files(text, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"settings{suffix}"
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))  # lone surrogates become invalid UTF-8
        cfg = _one_line_or(lambda p: config_from_dict(read_config_file(p)), path)
        assert cfg is None or isinstance(cfg, Config)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e400"])
def test_non_finite_numbers_are_refused_where_a_rate_is_expected(text):
    with pytest.raises(ValueError):
        config_from_dict({}, [f"train.lr_g={text}"])
