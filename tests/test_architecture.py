"""The code's shape: data flows one way (data → models/priors → trainer → bundle → twins → transform and loader →
classifiers → CLI), and so do imports.

The one place the two orders differ: the trainer writes bundles, so it imports the bundle format, which sits
below it; loading a generator by name (which re-attaches data) sits above. Imports are read from the source
with ``ast``, lazy ones included, so a cycle or a backward import fails here before it confuses anyone.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Installed names of the three source folders (pyproject.toml's package-dir).
PACKAGES = {"exaug": ROOT / "exaug", "exaug.classifiers": ROOT / "classifiers", "exaug.cli": ROOT / "cli"}
# Who may not import whom: each layer's modules never import a module of a later layer, and every module has
# its place here (a new module must be given one).
LAYERS = [
    ("utilities", ["exaug.atomic", "exaug.figures", "exaug.device", "exaug.images", "exaug.run_lock",
                   "exaug.checkpoint", "exaug.optim", "exaug.version"]),
    ("data", ["exaug.data", "exaug.exemplar_images"]),
    ("models and priors", ["exaug.models", "exaug.priors", "exaug.config", "exaug.latent_cache"]),
    ("bundle format", ["exaug.bundle", "exaug.bundle_schema"]),
    ("evaluation and sampling", ["exaug.evaluate", "exaug.sampling"]),
    ("trainers", ["exaug.epochs", "exaug.distributed", "exaug.train", "exaug.exemplar_objective"]),
    ("generators by name", ["exaug.pretrained"]),
    ("plugin", ["exaug.twins", "exaug.augment", "exaug.batch_twins", "exaug.collate", "exaug.exemplar_lookup",
                "exaug.mixed"]),
    ("classifiers", ["exaug.classifiers"]),
    ("command line", ["exaug.cli"]),
]


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports, at any depth of its code (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        targets |= {candidate for candidate in candidates if candidate in known and candidate != name}
    return targets


def graph() -> dict[str, set[str]]:
    """Each module's imports. Importing a package (``import exaug``, ``from exaug import X``) runs its
    ``__init__``, so it counts as importing every module that ``__init__`` gathers."""
    known = modules()
    direct = {name: imports_of(name, path, known) for name, path in known.items()}

    def through_packages(targets: set[str], seen: frozenset[str] = frozenset()) -> set[str]:
        found = set()
        for target in targets:
            if target in PACKAGES and target not in seen:
                found |= through_packages(direct[target], seen | {target})
            elif target not in PACKAGES:
                found.add(target)
        return found

    # A package's own __init__ only gathers the public names of its modules: it has no place in the layers.
    return {name: through_packages(targets, frozenset({name})) for name, targets in direct.items()
            if name not in PACKAGES}


def layer_of(name: str) -> int | None:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return index
    return None


def test_no_module_imports_itself_through_others():
    edges = graph()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for target in edges[start]:
            if target == goal or (target not in seen and (seen.add(target) or reaches(target, goal, seen))):
                return True
        return False

    cycles = sorted(name for name in edges if reaches(name, name, set()))
    assert cycles == [], f"import cycles through {cycles}"


def test_every_module_has_a_layer():
    assert [name for name in graph() if layer_of(name) is None] == []


def test_no_layer_imports_a_later_one():
    backwards = [f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                 for source, targets in graph().items() for target in targets
                 if layer_of(source) is not None and layer_of(target) is not None
                 and layer_of(target) > layer_of(source)]
    assert backwards == []
