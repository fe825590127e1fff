"""Issue 15: nothing from a request, a dataset or a workspace runs as code; errors are one
sentence; the language server never freezes."""
