/* Checks the Linux calls Herald serves beyond "hello": memory from mmap (through malloc and
 * directly, with mprotect — PROT_NONE too — and munmap), the clocks (wall time from the RTC),
 * sleeping, randomness, yielding, uname, limits, the console as a terminal (fstat, isatty,
 * TCGETS, poll, lseek, close), recorded signal state, futexes. Prints one line per failed check
 * and "linux-calls: all N passed"; exit 0 when all pass. The same binary passes on Linux. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <termios.h>
#include <unistd.h>

/* linux/futex.h (musl-gcc has no kernel headers). */
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129
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

    /* PROT_NONE keeps the bytes for when access comes back. */
    unsigned char *kept = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(kept != MAP_FAILED, "mmap for PROT_NONE");
    if (kept != MAP_FAILED) {
        kept[100] = 77;
        check(mprotect(kept, 4096, PROT_NONE) == 0, "mprotect PROT_NONE");
        check(mprotect(kept, 4096, PROT_READ) == 0 && kept[100] == 77, "PROT_NONE keeps the bytes");
        munmap(kept, 4096);
    }

    struct timespec wall;
    check(clock_gettime(CLOCK_REALTIME, &wall) == 0 && wall.tv_sec > 1700000000L,
          "CLOCK_REALTIME is wall time (after 2023)");
    struct timespec resolution;
    check(clock_getres(CLOCK_MONOTONIC, &resolution) == 0 && resolution.tv_sec == 0 &&
              resolution.tv_nsec > 0, "clock_getres");

    struct utsname name;
    check(uname(&name) == 0 && name.sysname[0] != 0 && strcmp(name.machine, "x86_64") == 0,
          "uname");
    struct rlimit stack;
    check(getrlimit(RLIMIT_STACK, &stack) == 0 && stack.rlim_cur >= 64 * 1024, "getrlimit(RLIMIT_STACK)");

    struct stat console;
    check(fstat(1, &console) == 0 && S_ISCHR(console.st_mode), "fstat(1) is a character device");
    check(isatty(1), "isatty(1)");
    struct termios settings;
    check(tcgetattr(1, &settings) == 0, "tcgetattr(1)");
    check(lseek(1, 0, SEEK_CUR) == -1 && errno == ESPIPE, "lseek on the console is ESPIPE");
    struct pollfd out = {.fd = 1, .events = POLLOUT};
    check(poll(&out, 1, 0) == 1 && (out.revents & POLLOUT), "poll: stdout is writable");
    struct pollfd bad = {.fd = 40, .events = POLLIN};
    check(poll(&bad, 1, 0) == 1 && (bad.revents & POLLNVAL), "poll: a closed fd is POLLNVAL");
    long long before_poll = now_ms();
    struct pollfd none = {.fd = -1};
    check(poll(&none, 1, 30) == 0 && now_ms() - before_poll >= 30, "poll waits out its timeout");
    check(close(0) == 0, "close(0)");
    char byte;
    check(read(0, &byte, 1) == -1 && errno == EBADF, "read of a closed fd is EBADF");
    check(close(0) == -1 && errno == EBADF, "closing it again is EBADF");

    struct sigaction action = {0}, old = {0};
    action.sa_handler = SIG_IGN;
    check(sigaction(SIGUSR1, &action, NULL) == 0, "sigaction SIGUSR1");
    check(sigaction(SIGUSR1, NULL, &old) == 0 && old.sa_handler == SIG_IGN,
          "sigaction reads back what was set");
    check(sigaction(SIGKILL, &action, NULL) == -1 && errno == EINVAL, "SIGKILL cannot be caught");
    sigset_t mask, previous;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    sigaddset(&mask, SIGKILL);
    check(sigprocmask(SIG_BLOCK, &mask, NULL) == 0, "sigprocmask SIG_BLOCK");
    check(sigprocmask(SIG_SETMASK, NULL, &previous) == 0 && sigismember(&previous, SIGUSR2) &&
              !sigismember(&previous, SIGKILL), "the mask holds SIGUSR2 and never SIGKILL");
    stack_t alternate = {.ss_sp = malloc(16384), .ss_size = 16384}, old_stack;
    check(sigaltstack(&alternate, NULL) == 0, "sigaltstack");
    check(sigaltstack(NULL, &old_stack) == 0 && old_stack.ss_size == 16384, "sigaltstack reads back");

    unsigned int word = 5;
    check(syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 6, NULL) == -1 && errno == EAGAIN,
          "futex wait on a changed word is EAGAIN");
    struct timespec brief = {0, 10 * 1000 * 1000};
    check(syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 5, &brief) == -1 && errno == ETIMEDOUT,
          "futex wait times out");
    check(syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1) == 0, "futex wake finds no waiter");
    if (failures == 0) printf("linux-calls: all %d passed\n", checks);
    return failures == 0 ? 0 : 1;
}
