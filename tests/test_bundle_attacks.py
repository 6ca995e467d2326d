"""A bundle trusts nothing in its files: each attack of issue 15 §4 and issue 26 ends in a BundleError naming the
problem, and fuzzed config.json values and safetensors headers either load or raise BundleError, never anything
else. A bundle write that fails leaves the bundle as it was."""

import hashlib
import json
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from exaug import BundleError, ExemplarVAE, ModelConfig, load_generator, save_generator
from exaug.bundle import CONFIG_FILE, EXEMPLARS_FILE, MODEL_FILE, read_bundle_config
from exaug.bundle_schema import model_config
from exaug.config import ARCHITECTURES
from exaug.models import build_generator


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


@pytest.mark.parametrize("name, message", [(MODEL_FILE, "outside the bundle"),
                                           (CONFIG_FILE, "config.json resolves to .*outside the bundle")])
def test_a_file_linked_from_outside_the_bundle_is_refused(tmp_path, name, message):
    small_bundle(tmp_path / "genuine")
    small_bundle(tmp_path / "linked")
    (tmp_path / "linked" / name).unlink()
    (tmp_path / "linked" / name).symlink_to(tmp_path / "genuine" / name)
    with pytest.raises(BundleError, match=message):
        load_generator(tmp_path / "linked")


def test_an_architecture_larger_than_the_weights_is_refused_before_it_is_built(bundle):
    edit_config(bundle, lambda config: config["model"].__setitem__("hidden_dim", 4_000))  # 256 MB as float32
    with pytest.raises(BundleError, match=r"does not match the architecture.*needs \[4000, 36\]"):
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


# Issue 26: sizes beyond this machine, deep nesting, a dataset that is not a name, a linked config.json, a full disk.

@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("key, value", [("hidden_dim", 1_600_000_000), ("hidden_dim", 2**63), ("latent_dim", 2**70),
                                        ("input_shape", [1, 10**9, 10**9]), ("num_pseudo_inputs", 2**64)])
def test_sizes_beyond_this_machines_memory_are_refused_naming_the_key_before_anything_is_built(bundle, architecture,
                                                                                              key, value):
    edit_config(bundle, lambda config: config["model"].update({"architecture": architecture, key: value}))
    with pytest.raises(BundleError, match=f"'model.{key}' .*more than this machine's .* of memory"):
        load_generator(bundle)


def test_an_exemplar_count_beyond_this_machines_memory_is_refused_by_name(bundle):
    edit_config(bundle, lambda config: config.__setitem__("exemplar_count", 2**62))
    with pytest.raises(BundleError, match="'exemplar_count' .*more than this machine's"):
        load_generator(bundle)


SIZE = st.integers(1, 64) | st.integers(1, 2**80)


@FUZZ
@given(architecture=st.sampled_from(ARCHITECTURES), hidden=SIZE, latent=SIZE, pseudo=SIZE,
       shape=st.lists(SIZE, min_size=3, max_size=3))
def test_sizes_the_schema_accepts_build_on_the_meta_device_for_every_architecture(bundle, architecture, hidden, latent,
                                                                                 pseudo, shape):
    edit_config(bundle, lambda config: config["model"].update(
        {"architecture": architecture, "hidden_dim": hidden, "latent_dim": latent, "num_pseudo_inputs": pseudo,
         "input_shape": shape}))
    try:
        config = read_bundle_config(bundle)
    except BundleError:
        return
    with torch.device("meta"):
        build_generator(model_config(config, bundle / CONFIG_FILE))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [100, 200_000])
def test_a_config_nested_too_deep_is_a_bundle_error_not_a_recursion_error(bundle, depth):
    config = json.loads((bundle / CONFIG_FILE).read_text())
    config["training"] = {"extra": {"deep": "PLACEHOLDER"}}
    (bundle / CONFIG_FILE).write_text(json.dumps(config).replace('"PLACEHOLDER"', nested(depth)))
    with pytest.raises(BundleError, match="config.json: config.json nests lists or objects deeper than 32 levels"):
        load_generator(bundle)


@pytest.mark.parametrize("depth", [100, 200_000])
def test_a_safetensors_header_nested_too_deep_is_a_bundle_error_not_a_recursion_error(bundle, depth):
    content = (bundle / MODEL_FILE).read_bytes()
    (length,) = struct.unpack("<Q", content[:8])
    header = f'{{"__metadata__": {nested(depth)}}}'.encode()
    (bundle / MODEL_FILE).write_bytes(struct.pack("<Q", len(header)) + header + content[8 + length:])
    rehash(bundle, MODEL_FILE)
    with pytest.raises(BundleError, match="its safetensors header nests lists or objects deeper than 32 levels"):
        load_generator(bundle)


@pytest.mark.parametrize("dataset", [["mnist"], {"name": "mnist"}, 3])
def test_a_recorded_dataset_that_is_not_a_name_is_one_line_from_evaluate(bundle, dataset):
    from click.testing import CliRunner

    from exaug.cli.main import main

    edit_config(bundle, lambda config: config.__setitem__("training", {"extra": {"dataset": dataset}}))
    result = CliRunner().invoke(main, ["evaluate", "--generator", str(bundle), "--no-progress"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "'training.extra.dataset' is" in result.output and "it must be the name of a dataset" in result.output


FULL_DISK = """
import resource, signal, sys, torch
from exaug import ExemplarVAE, ModelConfig, save_generator
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, as a full disk fails
torch.manual_seed(1)
model = ExemplarVAE(ModelConfig(input_shape=(1, 6, 6), hidden_dim=16, latent_dim=3)).eval()
model.set_exemplars(torch.rand(2000, 1, 6, 6), torch.arange(2000) % 2)  # exemplars.safetensors: about 100 KB
resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, resource.RLIM_INFINITY))  # model.safetensors (12 KB) fits
try:
    save_generator(model, sys.argv[1])
except OSError as error:
    print(error)
"""


def test_a_full_disk_while_a_bundle_is_written_leaves_the_bundle_there_unchanged(bundle):
    import subprocess
    import sys

    before = {path.name: path.read_bytes() for path in bundle.iterdir()}
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(bundle)], capture_output=True, text=True)
    assert {path.name: path.read_bytes() for path in bundle.iterdir()} == before, result
    assert "exemplars.safetensors" in result.stdout and "the bundle there is unchanged" in result.stdout, result
    load_generator(bundle)
