"""Memory truth: parse models, plan and measure what TFLite Micro really needs.

- `tflite_model`: parse a .tflite flatbuffer (tensors, ops, resolver method names).
- `measure`: the real TFLM arena size (smallest working `kTensorArenaSize`) and TFLM runs.
- `ops`: which builtin ops the installed TFLM build can run, asked of TFLM itself.
- `plan`: tensor lifetimes and TFLM's greedy memory plan of the arena head (static).
- `tail`: TFLM's persistent allocations and the smallest working arena, simulated (static).
- `estimate`: the static estimate of a parsed model (host and 32-bit target, floor, layers).
- `target`: the 32-bit MCU arena derived from a host measurement.
- `keras_estimate`: figures of a Keras model definition before conversion (no TensorFlow).
- `inspect` / `onnx_inspect`: the `tinyforge inspect` report for .tflite, .onnx, .keras/.h5.

Submodules are imported explicitly by callers; this package imports nothing so that the
TFLM child process (`python -m tinyforge.memory._tflm_child`) starts fast.
"""
