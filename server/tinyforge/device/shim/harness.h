// Between TinyForge's Arduino stand-in and its harness (tinyforge verify only).
#pragma once
#include <cstddef>
#include <cstdint>

void tinyforge_serial_write(const uint8_t* data, size_t size);
// Every delay(): the harness ends a run stuck in the sketch's halt() loop.
void tinyforge_on_delay(unsigned long ms);
