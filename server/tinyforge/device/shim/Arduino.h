// TinyForge's stand-in for the Arduino core, used only by `tinyforge verify` to run a
// project's own src/main.cpp on an emulated Cortex-M. It belongs to TinyForge, never to the
// user's project: Serial goes to the emulator's semihosting console, time is simulated, and
// pins read as 0. What it does not offer fails to compile here, not on the board.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#define DEC 10
#define HEX 16
#define OCT 8
#define BIN 2
#define HIGH 0x1
#define LOW 0x0
#define INPUT 0x0
#define OUTPUT 0x1
#define INPUT_PULLUP 0x2
#define LED_BUILTIN 13

typedef uint8_t byte;
typedef bool boolean;

class Print {
 public:
  virtual ~Print() = default;
  virtual size_t write(uint8_t c) = 0;
  virtual size_t write(const uint8_t* buffer, size_t size);
  size_t write(const char* str) { return str ? write(reinterpret_cast<const uint8_t*>(str), strlen(str)) : 0; }

  size_t print(const char* s) { return write(s); }
  size_t print(char c) { return write(static_cast<uint8_t>(c)); }
  size_t print(unsigned char n, int base = DEC) { return print(static_cast<unsigned long>(n), base); }
  size_t print(int n, int base = DEC) { return print(static_cast<long>(n), base); }
  size_t print(unsigned int n, int base = DEC) { return print(static_cast<unsigned long>(n), base); }
  size_t print(long n, int base = DEC);
  size_t print(unsigned long n, int base = DEC);
  size_t print(long long n, int base = DEC) { return print(static_cast<long>(n), base); }
  size_t print(unsigned long long n, int base = DEC) { return print(static_cast<unsigned long>(n), base); }
  size_t print(double n, int digits = 2);

  size_t println() { return write("\r\n"); }
  template <typename T>
  size_t println(T value) { return print(value) + println(); }
  template <typename T>
  size_t println(T value, int format) { return print(value, format) + println(); }
  size_t printf(const char* format, ...) __attribute__((format(printf, 2, 3)));
};

class HardwareSerial : public Print {
 public:
  void begin(unsigned long) {}
  void begin(unsigned long, uint16_t) {}
  void end() {}
  int available() { return 0; }
  int read() { return -1; }
  int peek() { return -1; }
  void flush();
  explicit operator bool() const { return true; }
  using Print::write;
  size_t write(uint8_t c) override;
  size_t write(const uint8_t* buffer, size_t size) override;
};

extern HardwareSerial Serial;

unsigned long millis();
unsigned long micros();
void delay(unsigned long ms);
void delayMicroseconds(unsigned int us);
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t value);
int digitalRead(uint8_t pin);
int analogRead(uint8_t pin);
void analogWrite(uint8_t pin, int value);

void setup();
void loop();
