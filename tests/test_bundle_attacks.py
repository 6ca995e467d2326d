"""A bundle trusts nothing in its files: each attack of issue 15 §4 ends in a BundleError naming the problem,
and fuzzed config.json values and safetensors headers either load or raise BundleError, never anything else."""

import hashlib
import json
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from exaug import BundleError, ExemplarVAE, ModelConfig, load_generator, save_generator
from exaug.bundle import CONFIG_FILE, EXEMPLARS_FILE, MODEL_FILE


def small_bundle(directory):
    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 6, 6), hidden_dim=16, latent_dim=3)).eval()
    model.set_exemplars(torch.rand(10, 1, 6, 6), torch.arange(10) % 2)
    save_generator(model, directory)
    return model


@pytest.fixture
def bundle(tmp_path):
    small_bundle(tmp_path)
    return tmp_path


def edit_config(directory, edit):
    config = json.loads((directory / CONFIG_FILE).read_text())
    edit(config)
    (directory / CONFIG_FILE).write_text(json.dumps(config))


def rehash(directory, name):
    """Record the current sha256 of ``name`` in config.json, as an attacker who rewrote the file would."""
    digest = hashlib.sha256((directory / name).read_bytes()).hexdigest()
    edit_config(directory, lambda config: config["sha256"].__setitem__(name, digest))


@pytest.mark.parametrize("hashes", [{}, None, {MODEL_FILE: "0" * 64}, {MODEL_FILE: 5, EXEMPLARS_FILE: "x"}])
def test_a_bundle_without_a_hash_for_every_file_is_refused(bundle, hashes):
    edit_config(bundle, lambda config: config.__setitem__("sha256", hashes))
    with pytest.raises(BundleError, match="sha256"):
        load_generator(bundle)


def test_a_weight_file_linked_from_outside_the_bundle_is_refused(tmp_path):
    small_bundle(tmp_path / "genuine")
    small_bundle(tmp_path / "linked")
    (tmp_path / "linked" / MODEL_FILE).unlink()
    (tmp_path / "linked" / MODEL_FILE).symlink_to(tmp_path / "genuine" / MODEL_FILE)
    with pytest.raises(BundleError, match="outside the bundle"):
        load_generator(tmp_path / "linked")


def test_an_architecture_larger_than_the_weights_is_refused_before_it_is_built(bundle):
    edit_config(bundle, lambda config: config["model"].__setitem__("hidden_dim", 10_000_000))  # 31 GB as float32
    with pytest.raises(BundleError, match=r"does not match the architecture.*needs \[10000000, 36\]"):
        load_generator(bundle)


@pytest.mark.parametrize("name, tensor", [(MODEL_FILE, "encoder.mean.weight"), (EXEMPLARS_FILE, "means")])
def test_non_finite_values_are_refused_even_with_a_matching_hash(bundle, name, tensor):
    from safetensors.torch import load_file

    tensors = load_file(str(bundle / name))
    tensors[tensor][0, 0] = float("nan")
    save_file(tensors, str(bundle / name))
    rehash(bundle, name)
    with pytest.raises(BundleError, match=f"'{tensor}' holds NaN"):
        load_generator(bundle)


@pytest.mark.parametrize("key, value, message", [
    ("latent_dim", 2.5, "'model.latent_dim' is 2.5"),
    ("latent_dim", True, "'model.latent_dim' is True"),
    ("input_shape", [1, 6], "'model.input_shape'"),
    ("prior", "flow", "'model.prior' is 'flow'"),
    ("surprise", 1, "unknown ModelConfig fields"),
])
def test_each_bad_model_field_is_a_bundle_error_naming_it(bundle, key, value, message):
    edit_config(bundle, lambda config: config["model"].__setitem__(key, value))
    with pytest.raises(BundleError, match=message):
        load_generator(bundle)


@pytest.mark.parametrize("key, value", [("exemplar_count", "10"), ("exemplar_count", 0), ("training", [1]),
                                        ("data_checksum", 3), ("model", "mlp")])
def test_each_bad_top_level_entry_is_a_bundle_error_naming_it(bundle, key, value):
    edit_config(bundle, lambda config: config.__setitem__(key, value))
    with pytest.raises(BundleError, match=f"'{key}'"):
        load_generator(bundle)


def test_a_wrongly_shaped_weight_is_a_bundle_error(bundle):
    from safetensors.torch import load_file

    tensors = load_file(str(bundle / MODEL_FILE))
    tensors["encoder.mean.weight"] = tensors["encoder.mean.weight"][:, :-1].contiguous()
    save_file(tensors, str(bundle / MODEL_FILE))
    rehash(bundle, MODEL_FILE)
    with pytest.raises(BundleError, match=r"encoder\.mean\.weight is \[3, 15\], the architecture needs \[3, 16\]"):
        load_generator(bundle)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                        max_size=4), max_leaves=8)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def loads_or_refuses(directory) -> None:
    try:
        load_generator(directory)
    except BundleError:
        pass


@FUZZ
@given(path=st.lists(st.sampled_from(["model", "sha256", "exemplar_count", "training", "extra", "input_shape",
                                      "latent_dim", "hidden_dim", "prior", MODEL_FILE, "format_version"]),
                     min_size=1, max_size=2), value=JSON)
def test_any_config_value_anywhere_loads_or_raises_a_bundle_error(bundle, path, value):
    original = (bundle / CONFIG_FILE).read_text()
    try:
        def plant(config):
            node = config
            for key in path[:-1]:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node[path[-1]] = value
        edit_config(bundle, plant)
        loads_or_refuses(bundle)
    finally:
        (bundle / CONFIG_FILE).write_text(original)


@FUZZ
@given(name=st.sampled_from([MODEL_FILE, EXEMPLARS_FILE]), header=st.one_of(
    st.binary(max_size=200),
    JSON.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.sampled_from(["means", "images", "encoder.mean.weight", "__metadata__"]),
                    st.fixed_dictionaries({"dtype": st.sampled_from(["F32", "U8", "I64", "F16", "Q4", 3]),
                                           "shape": st.lists(st.integers(-2, 40), max_size=3),
                                           "data_offsets": st.lists(st.integers(-5, 2000), max_size=3)}),
                    max_size=3).map(lambda value: json.dumps(value).encode())))
def test_any_safetensors_header_loads_or_raises_a_bundle_error(bundle, name, header):
    original = (bundle / name).read_bytes(), (bundle / CONFIG_FILE).read_text()
    try:
        (length,) = struct.unpack("<Q", original[0][:8])
        body = original[0][8 + length:]
        (bundle / name).write_bytes(struct.pack("<Q", len(header)) + header + body)
        rehash(bundle, name)
        loads_or_refuses(bundle)
    finally:
        (bundle / name).write_bytes(original[0])
        (bundle / CONFIG_FILE).write_text(original[1])


def test_a_float64_generator_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 6, 6), hidden_dim=16, latent_dim=3)).double().eval()
    model.set_exemplars(torch.rand(10, 1, 6, 6), torch.arange(10) % 2)
    save_generator(model, tmp_path)
    loaded = load_generator(tmp_path)
    torch.testing.assert_close(loaded.encoder.mean.weight.double(), model.encoder.mean.weight)


def test_integer_weights_are_refused(bundle):
    from safetensors.torch import load_file

    tensors = load_file(str(bundle / MODEL_FILE))
    tensors["encoder.mean.weight"] = tensors["encoder.mean.weight"].to(torch.int64)
    save_file(tensors, str(bundle / MODEL_FILE))
    rehash(bundle, MODEL_FILE)
    with pytest.raises(BundleError, match="encoder.mean.weight is int64, not a floating-point type"):
        load_generator(bundle)
