// The Arduino calls of the sketch, on the emulator: Serial → semihosting stdout, simulated time.
#include <Arduino.h>

#include <cstdarg>
#include <cstdio>

#include "harness.h"

HardwareSerial Serial;

namespace {
unsigned long long g_now_us = 0;  // simulated time: only delay() moves it
}

size_t Print::write(const uint8_t* buffer, size_t size) {
  size_t n = 0;
  while (size--) n += write(*buffer++);
  return n;
}

size_t Print::print(long n, int base) {
  if (base == DEC && n < 0) return print('-') + print(static_cast<unsigned long>(-(n + 1)) + 1UL, base);
  return print(static_cast<unsigned long>(n), base);
}

size_t Print::print(unsigned long n, int base) {
  if (base < 2) base = 10;
  char buf[8 * sizeof(long) + 1];
  char* p = &buf[sizeof(buf) - 1];
  *p = '\0';
  do {
    const unsigned long digit = n % static_cast<unsigned long>(base);
    n /= static_cast<unsigned long>(base);
    *--p = static_cast<char>(digit < 10 ? '0' + digit : 'A' + digit - 10);
  } while (n);
  return write(p);
}

size_t Print::print(double n, int digits) {
  if (std::isnan(n)) return write("nan");
  if (std::isinf(n)) return write(n > 0 ? "inf" : "-inf");
  char buf[64];
  snprintf(buf, sizeof(buf), "%.*f", digits < 0 ? 0 : digits, n);
  return write(buf);
}

size_t Print::printf(const char* format, ...) {
  char buf[256];
  va_list args;
  va_start(args, format);
  const int n = vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  return n > 0 ? write(buf) : 0;
}

size_t HardwareSerial::write(uint8_t c) {
  tinyforge_serial_write(&c, 1);
  return 1;
}

size_t HardwareSerial::write(const uint8_t* buffer, size_t size) {
  tinyforge_serial_write(buffer, size);
  return size;
}

void HardwareSerial::flush() { fflush(stdout); }

unsigned long millis() { return static_cast<unsigned long>(g_now_us / 1000); }
unsigned long micros() { return static_cast<unsigned long>(g_now_us); }

void delay(unsigned long ms) {
  g_now_us += 1000ULL * ms;
  tinyforge_on_delay(ms);
}

void delayMicroseconds(unsigned int us) { g_now_us += us; }
void pinMode(uint8_t, uint8_t) {}
void digitalWrite(uint8_t, uint8_t) {}
int digitalRead(uint8_t) { return LOW; }
int analogRead(uint8_t) { return 0; }
void analogWrite(uint8_t, int) {}
