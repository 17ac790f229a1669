/* The second peer benchmark: the Unix operations a shell lives on — fork + execve + wait, a
 * pipe's round trip between two processes, and a pipe's throughput — as a static Linux
 * program run unchanged on Herald (/bin/unix-bench) and on Linux 6.1 (as /init) in the same
 * QEMU by `cargo xtask bench --vs-linux`, beside linux-bench.c (the project's anchor, kept as
 * given). Under -icount shift=0 rdtsc advances once per guest instruction, so each figure is
 * exact. Lines start with the kernel's name (uname sysname, lower-cased). */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* Whole `len` bytes through `fd`, however the kernel splits them; 0 on success. */
static int move_all(int fd, char *buffer, size_t len, int writing) {
    while (len > 0) {
        ssize_t done = writing ? write(fd, buffer, len) : read(fd, buffer, len);
        if (done <= 0) return -1;
        buffer += done;
        len -= (size_t)done;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1) return 7; /* the program execve runs below */
    static struct utsname u;
    static char k[65];
    uname(&u);
    for (int i = 0; u.sysname[i] && i < 64; i++) k[i] = tolower((unsigned char)u.sysname[i]);
    /* Itself, by a path that works on both: Linux runs it as /init, Herald as /bin/unix-bench. */
    const char *self = access("/init", X_OK) == 0 ? "/init" : "/bin/unix-bench";
    uint64_t t0, t1;

    const int M = 200;
    char *args[] = {(char *)self, "x", 0};
    char *no_env[] = {0};
    t0 = rdtsc();
    for (int i = 0; i < M; i++) {
        pid_t p = fork();
        if (p == 0) {
            execve(self, args, no_env);
            _exit(127);
        }
        int st;
        waitpid(p, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 7) return 1;
    }
    t1 = rdtsc();
    printf("%s: fork + execve + wait                 %10.2f\n", k, (double)(t1 - t0) / M);

    /* One byte there and back between parent and child: two pipes, a round trip per step. */
    const int N = 10000;
    int there[2], back[2];
    if (pipe(there) || pipe(back)) return 2;
    pid_t c = fork();
    if (c == 0) {
        char byte;
        for (int i = 0; i < N; i++)
            if (read(there[0], &byte, 1) != 1 || write(back[1], &byte, 1) != 1) _exit(1);
        _exit(0);
    }
    char byte = 'x';
    t0 = rdtsc();
    for (int i = 0; i < N; i++)
        if (write(there[1], &byte, 1) != 1 || read(back[0], &byte, 1) != 1) return 3;
    t1 = rdtsc();
    waitpid(c, 0, 0);
    printf("%s: pipe ping-pong (1-byte round trip)   %10.2f\n", k, (double)(t1 - t0) / N);
    close(there[0]), close(there[1]), close(back[0]), close(back[1]);

    /* 16 MiB from a child to its parent in 64 KiB writes and reads: cost per 4 KiB moved. */
    static char chunk[64 * 1024];
    const int CHUNKS = 256;
    int flow[2];
    if (pipe(flow)) return 4;
    c = fork();
    if (c == 0) {
        close(flow[0]);
        memset(chunk, 'y', sizeof chunk);
        for (int i = 0; i < CHUNKS; i++)
            if (move_all(flow[1], chunk, sizeof chunk, 1)) _exit(1);
        _exit(0);
    }
    close(flow[1]);
    t0 = rdtsc();
    for (int i = 0; i < CHUNKS; i++)
        if (move_all(flow[0], chunk, sizeof chunk, 0)) return 5;
    t1 = rdtsc();
    waitpid(c, 0, 0);
    printf("%s: pipe throughput (per 4 KiB)          %10.2f\n", k,
           (double)(t1 - t0) / (CHUNKS * (sizeof chunk / 4096)));
    fflush(stdout);
    if (getpid() == 1) reboot(RB_POWER_OFF);
    return 0;
}
