// TinyForge's verification harness: runs the project's own sketch (setup() once, loop() once per
// sample) on an emulated Cortex-M and reports through semihosting what the board would do.
//
// - The sketch is compiled unchanged. Its call to MicroInterpreter::Invoke() is wrapped by the
//   linker (--wrap): the first Invoke() runs the sketch's own test sample; before each later
//   one the wrapper puts the next test sample into input 0. Every output tensor is printed raw
//   so that TinyForge can compare it with the host TFLM interpreter bit by bit.
// - tinyforge_invoke_begin/end bracket exactly the real Invoke(): the QEMU plugin counts the
//   guest instructions between them.
// - Run with a probe.txt holding a size, it only checks whether an arena of that size
//   allocates and runs the model with this TFLM build and these kernels on this 32-bit core:
//   TinyForge bisects the smallest one that does.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "harness.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/recording_micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tinyforge_ops.h"

void setup();
void loop();
extern const unsigned char g_model_data[];

#define MARK "@@tinyforge "

extern "C" __attribute__((noinline)) void tinyforge_invoke_begin(void) { __asm__ volatile("nop"); }
extern "C" __attribute__((noinline)) void tinyforge_invoke_end(void) { __asm__ volatile("nop"); }

namespace {

bool g_probing = false;
bool g_line_start = true;
unsigned g_invokes = 0;
unsigned long long g_delay_ms_this_run = 0;
FILE* g_samples = nullptr;
long g_sample_bytes = 0;

void mark(const char* format, ...) __attribute__((format(printf, 1, 2)));
void mark(const char* format, ...) {
  if (!g_line_start) fputc('\n', stdout);
  fputs(MARK, stdout);
  va_list args;
  va_start(args, format);
  vfprintf(stdout, format, args);
  va_end(args);
  fputc('\n', stdout);
  g_line_start = true;
}

void print_tensor(unsigned index, const TfLiteTensor* t) {
  if (!g_line_start) fputc('\n', stdout);
  printf(MARK "out %u %d %u ", index, static_cast<int>(t->type), static_cast<unsigned>(t->bytes));
  const uint8_t* p = reinterpret_cast<const uint8_t*>(t->data.raw);
  for (size_t i = 0; i < t->bytes; ++i) printf("%02x", p[i]);
  fputc('\n', stdout);
  g_line_start = true;
}

tflite::MicroMutableOpResolver<TINYFORGE_NUM_OPS>& resolver() {
  static tflite::MicroMutableOpResolver<TINYFORGE_NUM_OPS> ops;
  static bool registered = false;
  if (!registered) {
    TINYFORGE_REGISTER_OPS(ops);
    registered = true;
  }
  return ops;
}

// The arena on this core, kind by kind (RecordingMicroAllocator::PrintAllocations).
void record_allocations(size_t size, uint8_t* arena) {
  tflite::RecordingMicroInterpreter interpreter(tflite::GetModel(g_model_data), resolver(), arena,
                                                size);
  const bool ok = interpreter.AllocateTensors() == kTfLiteOk;
  mark("record begin ok=%d", ok ? 1 : 0);
  fflush(stdout);
  interpreter.GetMicroAllocator().PrintAllocations();
  fflush(stderr);
  mark("record end");
}

bool allocates(size_t size, uint8_t* arena, bool invoke, size_t* used) {
  tflite::MicroInterpreter interpreter(tflite::GetModel(g_model_data), resolver(), arena, size);
  bool ok = interpreter.AllocateTensors() == kTfLiteOk;
  if (ok && invoke) ok = interpreter.Invoke() == kTfLiteOk;
  if (ok && used != nullptr) *used = interpreter.arena_used_bytes();
  return ok;
}

// One probe run: does this arena size allocate and run the model on this core? A separate
// emulator run per size, because a too-small arena can make a kernel's Prepare() end in
// TFLITE_ABORT (which halts forever): TinyForge stops such a run when it prints HALTED.
int probe_arena(size_t size, bool record) {
  uint8_t* raw = static_cast<uint8_t*>(malloc(size + 16));
  if (raw == nullptr) {
    mark("probe size=%u ok=0 used=0 no-memory", static_cast<unsigned>(size));
    return 0;
  }
  uint8_t* arena = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + 15) & ~uintptr_t{15});
  g_probing = true;
  if (record) {
    record_allocations(size, arena);
    g_probing = false;
    return 0;
  }
  size_t used = 0;
  const bool ok = allocates(size, arena, true, &used);
  g_probing = false;
  mark("probe size=%u ok=%d used=%u", static_cast<unsigned>(size), ok ? 1 : 0,
       static_cast<unsigned>(used));
  return 0;
}

}  // namespace

void tinyforge_serial_write(const uint8_t* data, size_t size) {
  if (size == 0) return;
  fwrite(data, 1, size, stdout);
  g_line_start = data[size - 1] == '\n';
}


extern "C" TfLiteStatus __real__ZN6tflite16MicroInterpreter6InvokeEv(tflite::MicroInterpreter* self);

extern "C" TfLiteStatus __wrap__ZN6tflite16MicroInterpreter6InvokeEv(tflite::MicroInterpreter* self) {
  if (g_probing) return __real__ZN6tflite16MicroInterpreter6InvokeEv(self);
  const unsigned index = g_invokes++;
  if (index == 0) {
    mark("arena_used %u", static_cast<unsigned>(self->arena_used_bytes()));
  } else if (g_samples != nullptr) {
    TfLiteTensor* input = self->input(0);
    if (static_cast<long>(input->bytes) != g_sample_bytes ||
        fread(input->data.raw, 1, input->bytes, g_samples) != input->bytes) {
      mark("sample-mismatch %u %ld", static_cast<unsigned>(input->bytes), g_sample_bytes);
      exit(4);
    }
  }
  tinyforge_invoke_begin();
  const TfLiteStatus status = __real__ZN6tflite16MicroInterpreter6InvokeEv(self);
  tinyforge_invoke_end();
  if (status != kTfLiteOk) {
    mark("invoke-failed %u", index);
  } else {
    print_tensor(index, self->output(0));
  }
  return status;
}

int main() {
  // Line-buffered, like stderr (TFLM's DebugLog): the two streams reach the console in order.
  setvbuf(stdout, nullptr, _IOLBF, 256);
  long runs = 1;
  g_samples = fopen("samples.bin", "rb");
  if (g_samples != nullptr) {
    fseek(g_samples, 0, SEEK_END);
    const long total = ftell(g_samples);
    fseek(g_samples, 0, SEEK_SET);
    g_sample_bytes = TINYFORGE_SAMPLE_BYTES;
    if (g_sample_bytes > 0) runs += total / g_sample_bytes;
  }
  FILE* probe = fopen("probe.txt", "r");
  if (probe != nullptr) {
    unsigned long size = 0;
    char mode[16] = "";
    const int read = fscanf(probe, "%lu %15s", &size, mode);
    fclose(probe);
    if (read >= 1) return probe_arena(size, strcmp(mode, "record") == 0);
  }
  mark("setup");
  setup();
  for (long run = 0; run < runs; ++run) {
    mark("loop %ld", run);
    g_delay_ms_this_run = 0;
    const unsigned before = g_invokes;
    loop();
    if (g_invokes == before) {
      mark("no-invoke %ld", run);
      break;
    }
  }
  mark("done invokes=%u", g_invokes);
  fflush(stdout);
  return 0;
}

// A sketch that halts (its halt() loops on delay() forever) would never return: past 30
// simulated seconds inside one setup() or loop(), the run ends and says so.
void tinyforge_on_delay(unsigned long ms) {
  g_delay_ms_this_run += ms;
  if (g_delay_ms_this_run > 30000) {
    mark("halted");
    fflush(stdout);
    exit(3);
  }
}
