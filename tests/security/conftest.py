"""The language-server fixtures of tests/lsp, for the security tests that run over stdio, and a
small ONNX model for the ones that convert."""

from pathlib import Path

import pytest

from tests.lsp.conftest import anyio_backend, client

__all__ = ["anyio_backend", "client"]


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small PyTorch CNN exported to ONNX: a real onnx2tf conversion of it takes seconds."""
    import torch
    from torch import nn

    from tests.test_onnx_convert import _export

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 2),
        nn.Softmax(dim=1),
    )
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return _export(net, torch.zeros(1, 3, 8, 8), path, input_names=["image"], output_names=["p"])
