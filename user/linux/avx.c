/* Keeps a pattern of its own (from argv[1]) in all sixteen 256-bit ymm registers while it
 * yields N times (argv[2]) to whatever else runs, then checks every bit is still there: two of
 * these at once each see their own pattern only if the kernel saves the AVX upper halves with
 * each task. Prints "avx: not available" and exits 0 on a CPU (or kernel) without AVX; exits 1
 * if a register changed. */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int avx_usable(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 27)) || !(c & (1u << 28))) return 0; /* OSXSAVE, AVX */
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6) == 6; /* the kernel enabled SSE and AVX state */
}

int main(int argc, char **argv) {
    if (!avx_usable()) {
        printf("avx: not available\n");
        return 0;
    }
    uint64_t seed = argc > 1 ? strtoull(argv[1], 0, 10) : 1;
    long rounds = argc > 2 ? atol(argv[2]) : 200;
    static uint64_t in[64] __attribute__((aligned(32))), out[64] __attribute__((aligned(32)));
    for (int i = 0; i < 64; i++) in[i] = seed * 0x9e3779b97f4a7c15ull + (uint64_t)i * 0x100000001b3ull;
    __asm__ volatile(
        "vmovdqu 0(%[in]), %%ymm0\n vmovdqu 32(%[in]), %%ymm1\n vmovdqu 64(%[in]), %%ymm2\n"
        "vmovdqu 96(%[in]), %%ymm3\n vmovdqu 128(%[in]), %%ymm4\n vmovdqu 160(%[in]), %%ymm5\n"
        "vmovdqu 192(%[in]), %%ymm6\n vmovdqu 224(%[in]), %%ymm7\n vmovdqu 256(%[in]), %%ymm8\n"
        "vmovdqu 288(%[in]), %%ymm9\n vmovdqu 320(%[in]), %%ymm10\n vmovdqu 352(%[in]), %%ymm11\n"
        "vmovdqu 384(%[in]), %%ymm12\n vmovdqu 416(%[in]), %%ymm13\n vmovdqu 448(%[in]), %%ymm14\n"
        "vmovdqu 480(%[in]), %%ymm15\n"
        "1: mov $24, %%eax\n syscall\n dec %[rounds]\n jnz 1b\n" /* sched_yield */
        "vmovdqu %%ymm0, 0(%[out])\n vmovdqu %%ymm1, 32(%[out])\n vmovdqu %%ymm2, 64(%[out])\n"
        "vmovdqu %%ymm3, 96(%[out])\n vmovdqu %%ymm4, 128(%[out])\n vmovdqu %%ymm5, 160(%[out])\n"
        "vmovdqu %%ymm6, 192(%[out])\n vmovdqu %%ymm7, 224(%[out])\n vmovdqu %%ymm8, 256(%[out])\n"
        "vmovdqu %%ymm9, 288(%[out])\n vmovdqu %%ymm10, 320(%[out])\n vmovdqu %%ymm11, 352(%[out])\n"
        "vmovdqu %%ymm12, 384(%[out])\n vmovdqu %%ymm13, 416(%[out])\n vmovdqu %%ymm14, 448(%[out])\n"
        "vmovdqu %%ymm15, 480(%[out])\n vzeroupper\n"
        : [rounds] "+r"(rounds)
        : [in] "r"(in), [out] "r"(out)
        : "rax", "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
          "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    if (memcmp(in, out, sizeof in) != 0) {
        for (int i = 0; i < 64; i++)
            if (in[i] != out[i]) printf("avx: ymm%d lane %d changed: %016llx -> %016llx\n", i / 4, i % 4,
                                        (unsigned long long)in[i], (unsigned long long)out[i]);
        return 1;
    }
    printf("avx: ymm registers kept through %s switches\n", argc > 2 ? argv[2] : "200");
    return 0;
}
