"""Moving arrays in and out of a quantized TFLite tensor, by the tensor's own scale and zero point.

Shared by the Keras and ONNX converters' checks (numpy only, so either child can import it).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def quantize(x: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    """Float values → the tensor's dtype (float tensors pass through)."""
    dtype = np.dtype(details["dtype"])
    if dtype == np.float32:
        return x.astype(np.float32)
    scale, zero_point = details["quantization"]
    info = np.iinfo(dtype)
    quantized: np.ndarray = np.clip(np.round(x / scale + zero_point), info.min, info.max)
    return quantized.astype(dtype)


def dequantize(y: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    """The tensor's values → float."""
    if np.dtype(details["dtype"]) == np.float32:
        return y.astype(np.float32)
    scale, zero_point = details["quantization"]
    floats: np.ndarray = (y.astype(np.float32) - zero_point) * scale
    return floats
