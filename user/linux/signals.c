/* Checks signals: handlers with siginfo, masks (sa_mask, the signal's own bit, sigprocmask
 * delivering what it unblocks), a SIGSEGV handler escaping with siglongjmp, a SIGILL handler
 * skipping the instruction through its ucontext, every register (rcx and r11 too) intact
 * around a signal that lands in a busy loop, EINTR and SA_RESTART on a blocked read, EINTR
 * from nanosleep (with the time left) and pause, sigsuspend, SIGCHLD with the child's status, SIGPIPE (default and
 * ignored), default actions seen by waitpid, kill's errors, the alternate stack, process
 * groups. Prints one line per failed check and "signals: all N passed"; exit 0 when all pass.
 * The same binary passes on Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static int checks, failures;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
        printf("signals: FAILED %s (errno %d)\n", what, errno);
    }
}

static volatile sig_atomic_t caught, caught_code, caught_pid, caught_status, other_blocked, own_blocked;
static volatile uintptr_t caught_address;
static sigjmp_buf escape;

static void on_info(int signal, siginfo_t *info, void *context) {
    (void)context;
    caught = signal;
    caught_code = info->si_code;
    caught_pid = info->si_pid;
    caught_status = info->si_status;
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    other_blocked = sigismember(&now, SIGUSR2);
    own_blocked = sigismember(&now, signal);
}

static void on_plain(int signal) { caught = signal; }

static void on_segv(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)context;
    caught_address = (uintptr_t)info->si_addr;
    siglongjmp(escape, 1);
}

static void on_ill(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)info;
    ucontext_t *uc = context;
    uc->uc_mcontext.gregs[REG_RIP] += 2; /* past the ud2 */
    caught = SIGILL;
}

static volatile uintptr_t handler_stack_address;
static void on_altstack(int signal) {
    int local;
    (void)signal;
    handler_stack_address = (uintptr_t)&local;
}

static void set_action(int signal, void (*handler)(int), int flags) {
    struct sigaction action = {0};
    action.sa_handler = handler;
    action.sa_flags = flags;
    sigemptyset(&action.sa_mask);
    sigaction(signal, &action, NULL);
}

static void set_info_action(int signal, void (*handler)(int, siginfo_t *, void *), int flags) {
    struct sigaction action = {0};
    action.sa_sigaction = handler;
    action.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&action.sa_mask);
    sigaddset(&action.sa_mask, SIGUSR2);
    sigaction(signal, &action, NULL);
}

static void nap_ms(long ms) {
    struct timespec nap = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&nap, &nap) == -1 && errno == EINTR) {
    }
}

/* A child that sends `signal` to the parent after `ms`, then (if `ends` is set) writes a byte
 * to `fd`. */
static pid_t signal_later(int signal, long ms, int fd) {
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        nap_ms(ms);
        kill(parent, signal);
        if (fd >= 0) {
            nap_ms(ms);
            (void)!write(fd, "x", 1);
        }
        _exit(0);
    }
    return child;
}

static int wait_status(pid_t child) {
    int status = -1;
    while (waitpid(child, &status, 0) == -1 && errno == EINTR) {
    }
    return status;
}

static volatile int spin_flag;
static void on_spin(int signal) {
    (void)signal;
    spin_flag = 1;
}

int main(void) {
    pid_t me = getpid();

    set_info_action(SIGUSR1, on_info, 0);
    caught = 0;
    raise(SIGUSR1);
    check(caught == SIGUSR1, "raise runs the handler");
    check(caught_pid == me && caught_code == SI_TKILL, "siginfo: si_pid and SI_TKILL");
    check(other_blocked == 1 && own_blocked == 1, "sa_mask and the signal itself are blocked in the handler");
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    check(!sigismember(&mask, SIGUSR1) && !sigismember(&mask, SIGUSR2), "the mask is back after the handler");

    set_info_action(SIGUSR1, on_info, SA_NODEFER);
    raise(SIGUSR1);
    check(own_blocked == 0, "SA_NODEFER leaves the signal unblocked in its handler");

    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    caught = 0;
    kill(me, SIGUSR1);
    sigset_t pending;
    sigpending(&pending);
    check(caught == 0 && sigismember(&pending, SIGUSR1), "a blocked signal waits, pending");
    sigprocmask(SIG_UNBLOCK, &mask, NULL);
    check(caught == SIGUSR1 && caught_code == SI_USER, "unblocking delivers it before sigprocmask returns");

    set_info_action(SIGSEGV, on_segv, 0);
    caught_address = 0;
    if (sigsetjmp(escape, 1) == 0) {
        *(volatile int *)0x1000 = 1;
        check(0, "the write to 0x1000 faulted");
    }
    check(caught_address == 0x1000, "SIGSEGV's si_addr is the faulting address; siglongjmp escapes");
    sigprocmask(SIG_BLOCK, NULL, &mask);
    check(!sigismember(&mask, SIGSEGV), "siglongjmp restored the mask");
    set_action(SIGSEGV, SIG_DFL, 0);

    set_info_action(SIGILL, on_ill, 0);
    caught = 0;
    __asm__ volatile("ud2");
    check(caught == SIGILL, "a SIGILL handler moves rip past ud2 through its ucontext");

    /* rcx and r11 hold values no syscall return would leave; a signal from another process lands
     * in the loop, and both must survive the handler. */
    set_action(SIGUSR2, on_spin, 0);
    spin_flag = 0;
    pid_t sender = signal_later(SIGUSR2, 30, -1);
    uint64_t rcx_after, r11_after;
    __asm__ volatile(
        "mov $0x1234567, %%rcx\n"
        "mov $0x7654321, %%r11\n"
        "1: cmpl $0, %2\n"
        "je 1b\n"
        "mov %%rcx, %0\n"
        "mov %%r11, %1\n"
        : "=r"(rcx_after), "=r"(r11_after)
        : "m"(spin_flag)
        : "rcx", "r11", "memory");
    wait_status(sender);
    check(rcx_after == 0x1234567 && r11_after == 0x7654321, "rcx and r11 survive a signal in a busy loop");

    int ends[2];
    char byte;
    check(pipe(ends) == 0, "pipe");
    set_action(SIGUSR1, on_plain, 0);
    sender = signal_later(SIGUSR1, 30, ends[1]);
    errno = 0;
    check(read(ends[0], &byte, 1) == -1 && errno == EINTR, "a blocked read is interrupted: EINTR");
    wait_status(sender);
    check(read(ends[0], &byte, 1) == 1, "and the byte sent after is still there");
    set_action(SIGUSR1, on_plain, SA_RESTART);
    caught = 0;
    sender = signal_later(SIGUSR1, 30, ends[1]);
    check(read(ends[0], &byte, 1) == 1 && caught == SIGUSR1, "SA_RESTART: the read goes on after the handler");
    wait_status(sender);
    close(ends[0]);
    close(ends[1]);

    sender = signal_later(SIGUSR1, 30, -1);
    struct timespec long_nap = {5, 0}, left = {0, 0};
    errno = 0;
    check(nanosleep(&long_nap, &left) == -1 && errno == EINTR, "nanosleep is interrupted: EINTR (even with SA_RESTART)");
    check(left.tv_sec <= 4 && (left.tv_sec > 0 || left.tv_nsec > 0) && left.tv_nsec < 1000000000,
          "an interrupted nanosleep tells the time it had left");
    wait_status(sender);
    sender = signal_later(SIGUSR1, 30, -1);
    errno = 0;
    check(pause() == -1 && errno == EINTR, "pause returns EINTR after a handler");
    wait_status(sender);

    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sender = signal_later(SIGUSR1, 30, -1);
    sigset_t open_mask;
    sigemptyset(&open_mask);
    caught = 0;
    errno = 0;
    check(sigsuspend(&open_mask) == -1 && errno == EINTR && caught == SIGUSR1, "sigsuspend waits with its mask and returns EINTR");
    sigprocmask(SIG_BLOCK, NULL, &mask);
    check(sigismember(&mask, SIGUSR1), "and the old mask is back");
    wait_status(sender);
    sigprocmask(SIG_UNBLOCK, &mask, NULL);

    set_info_action(SIGCHLD, on_info, 0);
    caught = 0;
    pid_t child = fork();
    if (child == 0) _exit(42);
    int status = wait_status(child);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 42, "the child's status");
    check(caught == SIGCHLD && caught_pid == child && caught_status == 42, "SIGCHLD names the child and its status");
    /* As a shell waits: SIGCHLD blocked, sigsuspend until its handler ran, then a WNOHANG
     * wait — which must find the child the signal was about (on several CPUs the child may
     * still be leaving its CPU when the signal is sent). */
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigset_t old_mask;
    sigprocmask(SIG_BLOCK, &mask, &old_mask);
    set_action(SIGCHLD, on_plain, 0);
    int reaped_at_once = 1;
    for (int round = 0; round < 200 && reaped_at_once; round++) {
        caught = 0;
        child = fork();
        if (child == 0) _exit(3);
        sigset_t waiting = old_mask;
        sigdelset(&waiting, SIGCHLD);
        while (caught != SIGCHLD) sigsuspend(&waiting);
        reaped_at_once = waitpid(child, &status, WNOHANG) == child;
        if (!reaped_at_once) wait_status(child);
    }
    check(reaped_at_once, "after SIGCHLD a WNOHANG wait finds the child (200 rounds)");
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    set_action(SIGCHLD, SIG_DFL, 0);

    check(pipe(ends) == 0, "a pipe to break");
    close(ends[0]);
    child = fork();
    if (child == 0) {
        (void)!write(ends[1], "x", 1);
        _exit(0);
    }
    status = wait_status(child);
    check(WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE, "writing to a pipe nobody reads: SIGPIPE ends the writer");
    set_action(SIGPIPE, SIG_IGN, 0);
    errno = 0;
    check(write(ends[1], "x", 1) == -1 && errno == EPIPE, "with SIGPIPE ignored: EPIPE");
    close(ends[1]);
    set_action(SIGPIPE, SIG_DFL, 0);

    child = fork();
    if (child == 0) {
        for (;;) pause();
    }
    check(kill(child, 0) == 0, "kill(pid, 0) finds the child");
    kill(child, SIGTERM);
    status = wait_status(child);
    check(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "SIGTERM's default ends the child");
    errno = 0;
    check(kill(child, 0) == -1 && errno == ESRCH, "a reaped child: ESRCH");
    errno = 0;
    check(kill(me, 65) == -1 && errno == EINVAL, "signal 65: EINVAL");
    errno = 0;
    check(sigaction(SIGKILL, &(struct sigaction){.sa_handler = on_plain}, NULL) == -1 && errno == EINVAL, "SIGKILL cannot be caught");
    child = fork();
    if (child == 0) _exit(137);
    status = wait_status(child);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 137, "exit(137) is an exit, not SIGKILL");
    child = fork();
    if (child == 0) *(volatile int *)0 = 1;
    status = wait_status(child);
    check(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "an uncaught fault: WTERMSIG SIGSEGV");

    static char alternate[16384];
    stack_t stack = {.ss_sp = alternate, .ss_size = sizeof alternate, .ss_flags = 0};
    check(sigaltstack(&stack, NULL) == 0, "sigaltstack");
    set_action(SIGUSR1, on_altstack, SA_ONSTACK);
    raise(SIGUSR1);
    check(handler_stack_address > (uintptr_t)alternate && handler_stack_address < (uintptr_t)alternate + sizeof alternate,
          "SA_ONSTACK runs the handler on the alternate stack");
    stack.ss_flags = SS_DISABLE;
    sigaltstack(&stack, NULL);

    child = fork();
    if (child == 0) {
        setpgid(0, 0);
        for (;;) pause();
    }
    setpgid(child, child); /* either order wins the race: both make the same group */
    check(getpgid(child) == child, "setpgid makes the child a group leader");
    check(getpgid(0) == getpgrp() && getpgrp() != child, "the parent stays in its own group");
    kill(-child, SIGTERM);
    status = wait_status(child);
    check(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "kill(-pgid) signals the group");
    errno = 0;
    check(setsid() == -1 && errno == EPERM, "setsid of a group leader: EPERM");

    if (failures == 0) printf("signals: all %d passed\n", checks);
    return failures == 0 ? 0 : 1;
}
