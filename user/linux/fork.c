/* Checks fork and wait: the child gets 0 and its own copy of memory, the parent the child's pid
 * and its exit status (WEXITSTATUS), a child's fault reaches the parent as WTERMSIG SIGSEGV,
 * WNOHANG answers 0 while a child runs, a pipe carries bytes from child to parent (the parent's
 * read waits for them), descriptors and the working directory are inherited, getppid names the
 * parent, waits by process group (waitpid 0 and -pgid), waitid's siginfo (CLD_EXITED,
 * CLD_KILLED, WNOHANG, WNOWAIT), no zombies under SIGCHLD's SIG_IGN or SA_NOCLDWAIT, and argv[1] rounds of fork + exit + wait run (the test counts
 * frames after). Prints
 * one line per failed check and "fork: all N passed"; exit 0 when all pass. The same binary
 * passes on Linux. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int checks, failures;
static volatile int shared_value = 1;
static char message[16] = "parent";

static volatile sig_atomic_t chld_seen;
static void on_chld(int signal) {
    (void)signal;
    chld_seen++;
}

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
        printf("fork: FAILED %s (errno %d)\n", what, errno);
    }
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    pid_t me = getpid();
    pid_t child = fork();
    if (child == 0) {
        shared_value = 99;
        _exit(getppid() == me ? 7 : 8);
    }
    check(child > 0, "fork returns the child's pid to the parent");
    int status = 0;
    check(waitpid(child, &status, 0) == child, "waitpid returns that child");
    check(WIFEXITED(status) && WEXITSTATUS(status) == 7, "exit status 7 (and getppid was the parent)");
    check(shared_value == 1, "the child's write stayed in its own copy");

    /* The kernel writing into the child's memory (a read) must not reach the parent's copy. */
    int kernel_ends[2];
    check(pipe(kernel_ends) == 0 && write(kernel_ends[1], "child!", 7) == 7, "a pipe holding a message");
    child = fork();
    if (child == 0) _exit(read(kernel_ends[0], message, sizeof message) == 7 && strcmp(message, "child!") == 0 ? 0 : 1);
    check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child read into its copy");
    check(strcmp(message, "parent") == 0, "the kernel's write into the child's copy left the parent's alone");
    close(kernel_ends[0]);
    close(kernel_ends[1]);

    int ends[2];
    check(pipe(ends) == 0, "pipe");
    child = fork();
    if (child == 0) {
        close(ends[0]);
        struct timespec nap = {0, 30 * 1000 * 1000};
        nanosleep(&nap, NULL); /* the parent is already waiting in read */
        _exit(write(ends[1], "ping", 4) == 4 ? 0 : 1);
    }
    close(ends[1]);
    char buffer[8] = {0};
    check(read(ends[0], buffer, sizeof buffer) == 4 && memcmp(buffer, "ping", 4) == 0, "the parent reads what the child wrote");
    check(read(ends[0], buffer, sizeof buffer) == 0, "the child's exit closed the last write end");
    check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the writer exited 0");
    close(ends[0]);

    child = fork();
    if (child == 0) {
        volatile int *nothing = NULL;
        *nothing = 1;
        _exit(0);
    }
    check(waitpid(child, &status, 0) == child && WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "a child's fault is SIGSEGV");

    child = fork();
    if (child == 0) {
        struct timespec nap = {0, 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
        _exit(3);
    }
    check(waitpid(child, &status, WNOHANG) == 0, "WNOHANG while the child sleeps: 0");
    check(waitpid(-1, &status, 0) == child && WEXITSTATUS(status) == 3, "waitpid(-1) takes any child");
    check(waitpid(-1, &status, 0) == -1 && errno == ECHILD, "no children left: ECHILD");

    /* Waits by process group: waitpid(0) is the caller's group, waitpid(-g) group g. */
    pid_t stay = fork();
    if (stay == 0) {
        struct timespec nap = {0, 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
        _exit(4);
    }
    pid_t apart = fork();
    if (apart == 0) {
        setpgid(0, 0);
        _exit(5);
    }
    setpgid(apart, apart); /* whichever runs first, the child leads its own group */
    check(waitpid(-apart, &status, 0) == apart && WEXITSTATUS(status) == 5, "waitpid(-group) takes that group's child");
    check(waitpid(0, &status, 0) == stay && WEXITSTATUS(status) == 4, "waitpid(0) takes a child of the caller's group");

    /* waitid: the siginfo of an exit and of a kill; WNOWAIT leaves the child waitable. */
    child = fork();
    if (child == 0) _exit(6);
    siginfo_t info;
    memset(&info, 0xff, sizeof info);
    check(waitid(P_PID, child, &info, WEXITED | WNOWAIT) == 0 && info.si_pid == child && info.si_code == CLD_EXITED &&
              info.si_status == 6 && info.si_signo == SIGCHLD,
          "waitid WNOWAIT: CLD_EXITED with the exit status");
    check(waitid(P_ALL, 0, &info, WEXITED) == 0 && info.si_pid == child, "waitid again reaps it");
    child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    memset(&info, 0xff, sizeof info);
    check(waitid(P_PID, child, &info, WEXITED | WNOHANG) == 0 && info.si_pid == 0, "waitid WNOHANG while it runs: si_pid 0");
    kill(child, SIGTERM);
    check(waitid(P_PGID, 0, &info, WEXITED) == 0 && info.si_pid == child && info.si_code == CLD_KILLED &&
              info.si_status == SIGTERM,
          "waitid of a killed child: CLD_KILLED with the signal");
    check(waitid(P_ALL, 0, &info, WNOHANG) == -1 && errno == EINVAL, "waitid without WEXITED: EINVAL");

    /* A parent ignoring SIGCHLD (or with SA_NOCLDWAIT) leaves no zombies: wait blocks until
     * every child has ended, then fails with ECHILD. */
    for (int flags = 0; flags < 2; flags++) {
        struct sigaction action = {0};
        action.sa_handler = flags ? on_chld : SIG_IGN;
        action.sa_flags = flags ? SA_NOCLDWAIT : 0;
        sigemptyset(&action.sa_mask);
        sigaction(SIGCHLD, &action, NULL);
        chld_seen = 0;
        struct timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (int i = 0; i < 3; i++) {
            if (fork() == 0) {
                struct timespec nap = {0, 50 * 1000 * 1000};
                nanosleep(&nap, NULL);
                _exit(0);
            }
        }
        int waited;
        while ((waited = wait(&status)) == -1 && errno == EINTR) {
        }
        int no_children = waited == -1 && errno == ECHILD;
        clock_gettime(CLOCK_MONOTONIC, &end);
        long elapsed_ms = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000;
        check(no_children && elapsed_ms >= 40,
              flags ? "SA_NOCLDWAIT: wait waits for the children, then ECHILD"
                    : "SIGCHLD ignored: wait waits for the children, then ECHILD");
        if (flags) check(chld_seen > 0, "SA_NOCLDWAIT: the handler still hears of the ends");
    }
    signal(SIGCHLD, SIG_DFL);

    for (int i = 0; i < rounds; i++) {
        child = fork();
        if (child == 0) _exit(i & 0x7f);
        if (waitpid(child, &status, 0) != child || WEXITSTATUS(status) != (i & 0x7f)) {
            check(0, "a round of fork + exit + wait");
            break;
        }
    }
    if (failures == 0) printf("fork: all %d passed\n", checks);
    return failures == 0 ? 0 : 1;
}
