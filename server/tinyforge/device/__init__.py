"""Verify on an emulated board: the project's firmware, compiled with real TFLM for the board's
core, run in QEMU on test samples; every figure about the board measured there.

The stage is `verify.verify_project`; the report it gives is `report.DeviceReport`. The package
itself imports nothing, so reading a report (the editor does at start) loads neither numpy nor
the toolchain's modules.
"""
