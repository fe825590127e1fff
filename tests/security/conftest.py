"""The language-server fixtures of tests/lsp, for the security tests that run over stdio."""

from tests.lsp.conftest import anyio_backend, client

__all__ = ["anyio_backend", "client"]
