/* Checks pipes within one process: bytes in order, the end of the data once every write end
 * is closed (a dup'd one included), EPIPE with no reader (SIGPIPE ignored, as a program that
 * handles EPIPE itself does), O_NONBLOCK's EAGAIN on empty and full, the 64 KiB capacity, poll,
 * fstat (S_IFIFO) and lseek (ESPIPE). Prints one line per failed check and "pipes: all N
 * passed"; exit 0 when all pass. The same binary passes on Linux. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int checks, failures;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
        printf("pipes: FAILED %s (errno %d)\n", what, errno);
    }
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    int ends[2];
    if (argc > 1 && strcmp(argv[1], "block") == 0) {
        /* Waits for a byte nobody will write: the test kills it while it waits. */
        char byte;
        printf("pipes: waiting\n");
        fflush(stdout);
        return pipe(ends) == 0 && read(ends[0], &byte, 1) >= 0 ? 3 : 4;
    }
    check(pipe(ends) == 0 && ends[0] >= 3 && ends[1] == ends[0] + 1, "pipe gives two descriptors");
    check(write(ends[1], "hello", 5) == 5 && write(ends[1], " pipe", 5) == 5, "write into it");
    char buffer[64] = {0};
    check(read(ends[0], buffer, 3) == 3 && memcmp(buffer, "hel", 3) == 0, "a short read takes the first bytes");
    check(read(ends[0], buffer, sizeof buffer) == 7 && memcmp(buffer, "lo pipe", 7) == 0, "then the rest, in order");
    struct stat info;
    check(fstat(ends[0], &info) == 0 && S_ISFIFO(info.st_mode), "fstat: a FIFO");
    check(lseek(ends[0], 0, SEEK_CUR) == -1 && errno == ESPIPE, "lseek on a pipe: ESPIPE");
    check(write(ends[0], "x", 1) == -1 && errno == EBADF, "writing the read end: EBADF");

    int copy = dup(ends[1]);
    check(close(ends[1]) == 0, "close one write end");
    check(fcntl(ends[0], F_SETFL, O_NONBLOCK) == 0, "make the read end non-blocking");
    check(read(ends[0], buffer, 1) == -1 && errno == EAGAIN, "empty with a writer left: EAGAIN");
    struct pollfd watch = {.fd = ends[0], .events = POLLIN};
    check(poll(&watch, 1, 0) == 0, "poll: not readable yet");
    check(write(copy, "!", 1) == 1 && poll(&watch, 1, 0) == 1 && (watch.revents & POLLIN), "poll: readable after a write");
    check(read(ends[0], buffer, 8) == 1 && buffer[0] == '!', "the byte from the dup'd end");
    check(close(copy) == 0 && read(ends[0], buffer, 8) == 0, "every writer closed: the end of the data");
    check(close(ends[0]) == 0, "close the read end");

    check(pipe2(ends, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2 non-blocking, close-on-exec");
    check(fcntl(ends[1], F_GETFD) == FD_CLOEXEC, "O_CLOEXEC is set");
    static char chunk[4096];
    long total = 0;
    ssize_t wrote;
    while ((wrote = write(ends[1], chunk, sizeof chunk)) > 0) total += wrote;
    check(wrote == -1 && errno == EAGAIN && total == 65536, "a full pipe holds 64 KiB, then EAGAIN");
    check(read(ends[0], chunk, sizeof chunk) == sizeof chunk && write(ends[1], chunk, 100) == 100, "reading makes room");
    check(close(ends[0]) == 0, "close the read end");
    check(write(ends[1], "x", 1) == -1 && errno == EPIPE, "no reader: EPIPE");
    check(close(ends[1]) == 0, "close the write end");
    check(pipe2(ends, 12345) == -1 && errno == EINVAL, "pipe2 with unknown flags: EINVAL");

    /* A poll and a select with no time limit on an empty pipe wake when a child writes. */
    int waits[2];
    check(pipe(waits) == 0, "a pipe to wait on");
    for (int round = 0; round < 2; round++) {
        pid_t child = fork();
        if (child == 0) {
            struct timespec nap = {0, 30 * 1000 * 1000};
            nanosleep(&nap, NULL);
            _exit(write(waits[1], "w", 1) == 1 ? 0 : 1);
        }
        if (round == 0) {
            struct pollfd one = {.fd = waits[0], .events = POLLIN};
            check(poll(&one, 1, -1) == 1 && (one.revents & POLLIN), "poll wakes when a pipe gets bytes");
        } else {
            fd_set readable;
            FD_ZERO(&readable);
            FD_SET(waits[0], &readable);
            check(select(waits[0] + 1, &readable, NULL, NULL, NULL) == 1 && FD_ISSET(waits[0], &readable),
                  "select wakes when a pipe gets bytes");
        }
        char byte;
        (void)!read(waits[0], &byte, 1);
        waitpid(child, NULL, 0);
    }

    if (failures == 0) printf("pipes: all %d passed\n", checks);
    return failures == 0 ? 0 : 1;
}
