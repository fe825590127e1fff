/* Reset and fault handlers for the emulated MPS2 boards (tinyforge verify): vector table,
   .data copy and .bss clear, FPU access where the core has one, semihosting stdio (newlib's
   rdimon), C++ constructors, then the harness's main() and exit() through semihosting. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern uint32_t __data_start__, __data_end__, __data_load__, __bss_start__, __bss_end__, __StackTop;
extern int main(void);
extern void __libc_init_array(void);
extern void initialise_monitor_handles(void);
void* __dso_handle = 0; /* crtbegin.o's, which -nostartfiles leaves out */
void _init(void) {}
void _fini(void) {}

void Reset_Handler(void) {
#if defined(__ARM_FP)
  *(volatile uint32_t*)0xE000ED88 |= (0xFu << 20); /* CPACR: CP10 and CP11 full access */
  __asm__ volatile("dsb\n isb");
#endif
  for (uint32_t *s = &__data_load__, *d = &__data_start__; d < &__data_end__;) *d++ = *s++;
  for (uint32_t* d = &__bss_start__; d < &__bss_end__;) *d++ = 0;
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}

static void Fault_Handler(void) {
  fputs("\n@@tinyforge fault\n", stdout);
  fflush(stdout);
  exit(99);
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&__StackTop, Reset_Handler, Fault_Handler /* NMI */,
    Fault_Handler /* HardFault */, Fault_Handler, Fault_Handler, Fault_Handler, 0, 0, 0, 0,
    Fault_Handler /* SVC */, Fault_Handler, 0, Fault_Handler /* PendSV */,
    Fault_Handler /* SysTick */};

/* TFLM's log hook. TFLM since 2023 defines its own (printf-style, debug_log.cc); the Arduino
   packaging leaves it to the board (its system_setup.cpp covers only the Nano 33 BLE, where
   Serial gets it). Weak, so that a TFLM tree that has one keeps it. */
__attribute__((weak)) void DebugLog(const char* s) { fputs(s, stderr); }
