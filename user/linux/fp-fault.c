/* Unmasks the SSE divide-by-zero exception in MXCSR and divides by zero: the CPU raises #XM
 * (vector 19), which ends the program with Herald's fault code for it (219) until signals exist
 * (on Linux: SIGFPE). With the argument "x87" it does the same with the x87 unit (#MF, 16). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    volatile double zero = 0.0, one = 1.0, result;
    if (argc > 1 && strcmp(argv[1], "x87") == 0) {
        unsigned short control;
        __asm__ volatile("fnstcw %0" : "=m"(control));
        control &= ~0x4; /* ZM: unmask divide-by-zero */
        __asm__ volatile("fldcw %0" ::"m"(control));
        long double x = 1.0L, y = zero;
        __asm__ volatile("fdivp %%st, %%st(1); fwait" : "+t"(x) : "u"(y) : "st(1)");
        result = (double)x;
    } else {
        unsigned int mxcsr;
        __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
        mxcsr &= ~(1u << 9); /* ZM: unmask divide-by-zero */
        __asm__ volatile("ldmxcsr %0" ::"m"(mxcsr));
        result = one / zero;
    }
    printf("fp-fault: no exception, result %f\n", result);
    return 0;
}
