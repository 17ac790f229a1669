/* A long floating-point computation that must come out the same however often the program is
 * preempted: sums a series in double precision with SSE (and a few x87 long doubles), seeded by
 * argv[1], and prints the bits of the result. Two copies run at once must print what one alone
 * prints — if a switch lost or mixed registers, the bits would differ. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    long seed = argc > 1 ? atol(argv[1]) : 1;
    long steps = argc > 2 ? atol(argv[2]) : 3000000;
    double sum = 0.0, term = 1.0 + (double)seed / 1000.0;
    long double wide = 0.0L;
    for (long i = 1; i <= steps; i++) {
        term = term * 0.999999 + 1.0 / (double)(i + seed);
        sum += term / (double)i;
        if (i % 1024 == 0) wide += (long double)sum / (long double)i;
    }
    uint64_t bits, wide_bits;
    double narrowed = (double)wide;
    memcpy(&bits, &sum, sizeof bits);
    memcpy(&wide_bits, &narrowed, sizeof wide_bits);
    printf("fp-work %ld: %016llx %016llx\n", seed, (unsigned long long)bits, (unsigned long long)wide_bits);
    return 0;
}
