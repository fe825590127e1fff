"""Convert: a trained model → (int8) TFLite → a C array for TFLM."""
