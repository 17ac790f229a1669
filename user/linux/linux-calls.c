/* Checks the Linux calls Herald serves beyond "hello": memory from mmap (through malloc and
 * directly, with mprotect and munmap), the monotonic clock, sleeping, randomness and yielding.
 * Prints one line per failed check and "linux-calls: all N passed"; exit 0 when all pass. */
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

static int checks, failures;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
        printf("linux-calls: FAILED %s\n", what);
    }
}

static long long now_ms(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return -1;
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(void) {
    /* malloc of a megabyte goes to mmap (there is no brk). */
    size_t big = 1 << 20;
    unsigned char *block = malloc(big);
    check(block != NULL, "malloc of 1 MiB");
    if (block) {
        memset(block, 0x5a, big);
        check(block[0] == 0x5a && block[big - 1] == 0x5a, "the block holds what was written");
        free(block);
    }
    void *pages = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(pages != MAP_FAILED, "mmap of three pages");
    if (pages != MAP_FAILED) {
        check(((unsigned char *)pages)[4096] == 0, "fresh pages are zero");
        ((unsigned char *)pages)[0] = 1;
        check(mprotect(pages, 4096, PROT_READ) == 0, "mprotect read-only");
        check(munmap(pages, 3 * 4096) == 0, "munmap");
    }
    long long start = now_ms();
    check(start >= 0, "clock_gettime(CLOCK_MONOTONIC)");
    struct timespec nap = {0, 20 * 1000 * 1000};
    check(nanosleep(&nap, NULL) == 0, "nanosleep");
    long long slept = now_ms() - start;
    check(slept >= 20, "nanosleep lasts at least 20 ms");
    unsigned char random[16] = {0};
    check(getrandom(random, sizeof random, 0) == sizeof random, "getrandom fills 16 bytes");
    int nonzero = 0;
    for (size_t i = 0; i < sizeof random; i++) nonzero |= random[i];
    check(nonzero, "getrandom's bytes are not all zero");
    check(sched_yield() == 0, "sched_yield");
    if (failures == 0) printf("linux-calls: all %d passed\n", checks);
    return failures == 0 ? 0 : 1;
}
