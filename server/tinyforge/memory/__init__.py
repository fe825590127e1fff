"""Memory truth: parse .tflite models and measure what TFLite Micro really needs.

- `tflite_model`: parse a .tflite flatbuffer (tensors, ops, resolver method names).
- `measure`: the real TFLM arena size (smallest working `kTensorArenaSize`) and TFLM runs.
- `ops`: which builtin ops the installed TFLM build can run, asked of TFLM itself.

Submodules are imported explicitly by callers; this package imports nothing so that the
TFLM child process (`python -m tinyforge.memory._tflm_child`) starts fast.
"""
