"""The public API is importable from the package top level, documented, and its examples run (doctest)."""

from __future__ import annotations

import doctest

import pytest
import torch

import oicsr_lab

PUBLIC = ["find_groups", "make_regularizer", "channel_energy", "count_flops", "global_greedy_plan",
          "apply_masks", "prune", "build_model", "load_dataset"]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_function_has_a_docstring_with_a_running_example(name: str, tmp_path, monkeypatch) -> None:
    """Each named function is a top-level attribute whose docstring example runs as written."""
    monkeypatch.setenv("OICSR_LAB_DATA", str(tmp_path))  # load_dataset's example writes its tensor cache here
    fn = getattr(oicsr_lab, name)
    doc = fn.__doc__ or ""
    assert doc.strip().splitlines()[0], f"{name} has no one-line summary"
    assert "Example:" in doc and ">>>" in doc, f"{name}'s docstring has no example"
    torch.manual_seed(0)
    tests = doctest.DocTestFinder(recurse=False).find(fn, name, globs={})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    assert runner.failures == 0 and runner.tries > 0, f"{name}'s example failed"


def test_top_level_names_resolve_lazily() -> None:
    """``dir(oicsr_lab)`` lists the API and every listed name resolves; unknown names raise AttributeError."""
    for name in oicsr_lab.__all__:
        assert getattr(oicsr_lab, name) is not None
    with pytest.raises(AttributeError):
        oicsr_lab.no_such_function  # noqa: B018
