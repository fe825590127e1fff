/* QEMU TCG plugin (plugin API 1, QEMU 7.2 and later) for `tinyforge verify`: counts the guest
   instructions executed between two addresses, begin=ADDR and end=ADDR (the harness's
   tinyforge_invoke_begin/end around MicroInterpreter::Invoke()), and prints one line per
   bracket: "insn_count invoke N". Debian ships neither qemu-plugin.h nor plugin .so files, so
   the few entry points used are declared here with QEMU's prototypes. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb*);
typedef void (*vcpu_udata_cb_t)(unsigned int, void*);
typedef void (*udata_cb_t)(qemu_plugin_id_t, void*);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb_t);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb*, vcpu_udata_cb_t,
                                          enum qemu_plugin_cb_flags, void*);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb*, enum qemu_plugin_op, void*,
                                              uint64_t);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb*);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb*);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb_t, void*);
void qemu_plugin_outs(const char*);

EXPORT int qemu_plugin_version = 1;

/* `executed` counts whole translation blocks as they start; the marker functions begin their
   own blocks, so the count between the two markers is exact. */
static uint64_t executed, started_at, begin_pc = UINT64_MAX, end_pc = UINT64_MAX;

static void on_begin(unsigned int vcpu, void* udata) { started_at = executed; }

static void on_end(unsigned int vcpu, void* udata) {
  char line[64];
  snprintf(line, sizeof line, "insn_count invoke %" PRIu64 "\n", executed - started_at);
  qemu_plugin_outs(line);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  const uint64_t pc = qemu_plugin_tb_vaddr(tb);
  if (pc == begin_pc) qemu_plugin_register_vcpu_tb_exec_cb(tb, on_begin, QEMU_PLUGIN_CB_NO_REGS, 0);
  if (pc == end_pc) qemu_plugin_register_vcpu_tb_exec_cb(tb, on_end, QEMU_PLUGIN_CB_NO_REGS, 0);
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                           qemu_plugin_tb_n_insns(tb));
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc, char** argv) {
  for (int i = 0; i < argc; i++) {
    /* Thumb function addresses carry bit 0; the instruction address does not. */
    if (!strncmp(argv[i], "begin=", 6)) begin_pc = strtoull(argv[i] + 6, 0, 0) & ~1ull;
    if (!strncmp(argv[i], "end=", 4)) end_pc = strtoull(argv[i] + 4, 0, 0) & ~1ull;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  return 0;
}
