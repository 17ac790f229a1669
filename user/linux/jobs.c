/* Checks job control's signals: SIGSTOP, SIGTSTP (and raise of it) stop a child, waitpid's
 * WUNTRACED and WCONTINUED report the stop (once) and the continue, waitid's WSTOPPED and
 * WCONTINUED say CLD_STOPPED and CLD_CONTINUED, the parent's SIGCHLD carries both (and neither
 * with SA_NOCLDSTOP), /proc shows the stopped child as 'T', a signal sent while stopped waits
 * until SIGCONT (a caught one runs its handler then, SIGTERM ends it then), SIGKILL ends a
 * stopped child at once, a sleep goes on across a stop, SIGCONT runs its handler, SIGCONT drops
 * a pending stop, SIGTSTP does not stop an orphaned group (SIGSTOP does), and kill of a zombie
 * succeeds until it is reaped. Prints one line
 * per failed check and "jobs: all N passed"; exit 0 when all pass. The same binary passes on
 * Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int checks, failures;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
        printf("jobs: FAILED %s (errno %d)\n", what, errno);
    }
}

static void nap_ms(long ms) {
    struct timespec nap = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&nap, &nap) == -1 && errno == EINTR) {
    }
}

static long now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* What the parent's SIGCHLD handler saw last, and how many it saw. */
static volatile sig_atomic_t chld_count, chld_code, chld_status, chld_pid;

static void on_chld(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)context;
    chld_count++;
    chld_code = info->si_code;
    chld_status = info->si_status;
    chld_pid = info->si_pid;
}

static void set_chld(int flags) {
    struct sigaction action = {0};
    action.sa_sigaction = on_chld;
    action.sa_flags = SA_SIGINFO | SA_RESTART | flags;
    sigemptyset(&action.sa_mask);
    sigaction(SIGCHLD, &action, NULL);
}

/* Waits up to 2 s for the SIGCHLD count to pass `seen`. */
static int chld_after(int seen) {
    for (int i = 0; i < 200 && chld_count <= seen; i++) nap_ms(10);
    return chld_count > seen;
}

/* The child's end of a pipe its handlers write to. */
static int report_fd = -1;

static void on_usr1(int signal) {
    (void)signal;
    (void)!write(report_fd, "u", 1);
}

static void on_cont(int signal) {
    (void)signal;
    (void)!write(report_fd, "c", 1);
}

static void set_plain(int signal, void (*handler)(int)) {
    struct sigaction action = {0};
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    sigaction(signal, &action, NULL);
}

/* A child in its own process group (so the terminal's stops stop it: its parent is in another
 * group of the same session) that waits for signals until it is ended. */
static pid_t idle_child(void) {
    pid_t child = fork();
    if (child == 0) {
        setpgid(0, 0);
        for (;;) pause();
    }
    setpgid(child, child);
    return child;
}

static char state_of(pid_t pid) {
    char path[64], text[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return '?';
    ssize_t got = read(fd, text, sizeof text - 1);
    close(fd);
    if (got <= 0) return '?';
    text[got] = 0;
    char *after_name = strrchr(text, ')');
    return after_name && after_name[1] == ' ' ? after_name[2] : '?';
}

/* Waits (up to 2 s) until /proc shows `pid` in `state`. */
static int reaches_state(pid_t pid, char state) {
    for (int i = 0; i < 200; i++) {
        if (state_of(pid) == state) return 1;
        nap_ms(10);
    }
    return 0;
}

static int wait_for(pid_t child, int options) {
    int status = -1;
    while (waitpid(child, &status, options) == -1 && errno == EINTR) {
    }
    return status;
}

int main(void) {
    set_chld(0);
    int status;

    /* SIGSTOP: reported once to WUNTRACED, with SIGCHLD's CLD_STOPPED, shown as 'T'. */
    pid_t child = idle_child();
    int seen = chld_count;
    check(kill(child, SIGSTOP) == 0, "kill SIGSTOP");
    status = wait_for(child, WUNTRACED);
    check(WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP, "waitpid WUNTRACED: stopped by SIGSTOP");
    check(waitpid(child, &status, WUNTRACED | WNOHANG) == 0, "the stop is reported once");
    /* (Not its si_status: Linux reads the stop signal for it after a wait may have taken the
     * report, and then says 0.) */
    check(chld_after(seen) && chld_code == CLD_STOPPED && chld_pid == child,
          "SIGCHLD says CLD_STOPPED, and the child");
    check(reaches_state(child, 'T'), "/proc/PID/stat shows T");

    /* SIGCONT: reported to WCONTINUED, with CLD_CONTINUED; running again. */
    seen = chld_count;
    check(kill(child, SIGCONT) == 0, "kill SIGCONT");
    status = wait_for(child, WCONTINUED);
    check(WIFCONTINUED(status), "waitpid WCONTINUED: continued");
    check(chld_after(seen) && chld_code == CLD_CONTINUED && chld_status == SIGCONT,
          "SIGCHLD says CLD_CONTINUED, SIGCONT");
    check(reaches_state(child, 'S'), "/proc shows it waiting again, not stopped");

    /* waitid's view of the same. */
    siginfo_t info;
    kill(child, SIGSTOP);
    memset(&info, 0, sizeof info);
    check(waitid(P_PID, child, &info, WSTOPPED) == 0 && info.si_code == CLD_STOPPED &&
              info.si_status == SIGSTOP && info.si_pid == child,
          "waitid WSTOPPED: CLD_STOPPED, SIGSTOP");
    memset(&info, 0, sizeof info);
    check(waitid(P_PID, child, &info, WEXITED | WNOHANG) == 0 && info.si_pid == 0,
          "waitid WEXITED does not report a stopped child");
    kill(child, SIGCONT);
    memset(&info, 0, sizeof info);
    check(waitid(P_PID, child, &info, WCONTINUED) == 0 && info.si_code == CLD_CONTINUED &&
              info.si_status == SIGCONT,
          "waitid WCONTINUED: CLD_CONTINUED, SIGCONT");

    /* SIGKILL ends a stopped child at once. */
    kill(child, SIGSTOP);
    wait_for(child, WUNTRACED);
    kill(child, SIGKILL);
    status = wait_for(child, 0);
    check(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "SIGKILL ends a stopped child");

    /* While stopped, a caught signal waits; after SIGCONT its handler runs, and SIGCONT's. */
    int ends[2];
    check(pipe(ends) == 0, "pipe");
    child = fork();
    if (child == 0) {
        report_fd = ends[1];
        setpgid(0, 0);
        set_plain(SIGUSR1, on_usr1);
        set_plain(SIGCONT, on_cont);
        (void)!write(report_fd, "r", 1);
        for (;;) pause();
    }
    setpgid(child, child);
    char byte = 0;
    check(read(ends[0], &byte, 1) == 1 && byte == 'r', "the child set its handlers");
    kill(child, SIGSTOP);
    wait_for(child, WUNTRACED);
    kill(child, SIGUSR1);
    nap_ms(50);
    fcntl(ends[0], F_SETFL, O_NONBLOCK);
    check(read(ends[0], &byte, 1) == -1 && errno == EAGAIN, "no handler runs while stopped");
    fcntl(ends[0], F_SETFL, 0);
    kill(child, SIGCONT);
    char got[3] = {0};
    check(read(ends[0], &got[0], 1) == 1 && read(ends[0], &got[1], 1) == 1,
          "two handlers ran after SIGCONT");
    check(strchr(got, 'u') && strchr(got, 'c'), "SIGUSR1's and SIGCONT's");
    kill(child, SIGKILL);
    wait_for(child, 0);

    /* A fatal signal sent while stopped ends the child only once it is continued. */
    child = idle_child();
    kill(child, SIGSTOP);
    wait_for(child, WUNTRACED);
    kill(child, SIGTERM);
    nap_ms(50);
    check(waitpid(child, &status, WNOHANG) == 0, "SIGTERM waits while the child is stopped");
    kill(child, SIGCONT);
    status = wait_for(child, 0);
    check(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "and ends it after SIGCONT");

    /* A child that stops itself with SIGTSTP; its sleep goes on after the continue. */
    child = fork();
    if (child == 0) {
        setpgid(0, 0);
        long start = now_ms();
        raise(SIGTSTP);
        struct timespec nap = {0, 200 * 1000 * 1000};
        int slept = nanosleep(&nap, NULL);
        _exit(slept == 0 && now_ms() - start >= 200 ? 0 : 1);
    }
    setpgid(child, child);
    status = wait_for(child, WUNTRACED);
    check(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTSTP, "raise(SIGTSTP) stops the child");
    kill(child, SIGCONT);
    status = wait_for(child, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "then it runs on and sleeps out its time");

    /* Stopped in the middle of a sleep: the sleep is not cut short by the stop and continue. */
    child = fork();
    if (child == 0) {
        setpgid(0, 0);
        struct timespec nap = {0, 300 * 1000 * 1000};
        _exit(nanosleep(&nap, NULL) == 0 ? 0 : 1);
    }
    setpgid(child, child);
    nap_ms(50);
    kill(child, SIGTSTP);
    status = wait_for(child, WUNTRACED);
    check(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTSTP, "SIGTSTP stops a sleeping child");
    kill(child, SIGCONT);
    status = wait_for(child, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "its nanosleep returns 0 after SIGCONT");

    /* SIGCONT drops a pending (blocked) stop signal. */
    int go[2];
    check(pipe(ends) == 0 && pipe(go) == 0, "two pipes");
    child = fork();
    if (child == 0) {
        setpgid(0, 0);
        sigset_t tstp;
        sigemptyset(&tstp);
        sigaddset(&tstp, SIGTSTP);
        sigprocmask(SIG_BLOCK, &tstp, NULL);
        (void)!write(ends[1], "r", 1);
        char word;
        (void)!read(go[0], &word, 1);
        sigset_t pending;
        sigpending(&pending);
        int dropped = !sigismember(&pending, SIGTSTP);
        sigprocmask(SIG_UNBLOCK, &tstp, NULL);
        _exit(dropped ? 0 : 1);
    }
    setpgid(child, child);
    check(read(ends[0], &byte, 1) == 1, "the child blocked SIGTSTP");
    kill(child, SIGTSTP);
    kill(child, SIGCONT);
    (void)!write(go[1], "g", 1);
    status = wait_for(child, WUNTRACED);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "SIGCONT dropped the pending SIGTSTP");
    close(go[0]);
    close(go[1]);

    /* SA_NOCLDSTOP: no SIGCHLD for a stop or continue, but waitpid still reports them. */
    set_chld(SA_NOCLDSTOP);
    child = idle_child();
    seen = chld_count;
    kill(child, SIGSTOP);
    status = wait_for(child, WUNTRACED);
    check(WIFSTOPPED(status), "stopped under SA_NOCLDSTOP");
    kill(child, SIGCONT);
    status = wait_for(child, WCONTINUED);
    check(WIFCONTINUED(status), "continued under SA_NOCLDSTOP");
    nap_ms(50);
    check(chld_count == seen, "and no SIGCHLD for either");
    kill(child, SIGKILL);
    wait_for(child, 0);
    check(chld_after(seen), "SIGCHLD still comes for the end");
    set_chld(0);

    /* An orphaned group (a new session: its parent is in another one): SIGTSTP does not stop
     * it, SIGSTOP does. */
    check(pipe(ends) == 0, "pipe");
    child = fork();
    if (child == 0) {
        report_fd = ends[1];
        setsid();
        set_plain(SIGUSR1, on_usr1);
        (void)!write(report_fd, "r", 1);
        for (;;) pause();
    }
    check(read(ends[0], &byte, 1) == 1, "the child leads a new session");
    kill(child, SIGTSTP);
    kill(child, SIGUSR1);
    check(read(ends[0], &byte, 1) == 1 && byte == 'u', "SIGTSTP left the orphaned group running");
    check(waitpid(child, &status, WUNTRACED | WNOHANG) == 0, "and nothing to report");
    kill(child, SIGSTOP);
    status = wait_for(child, WUNTRACED);
    check(WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP, "SIGSTOP stops it");
    kill(child, SIGKILL);
    wait_for(child, 0);

    /* SIGCONT to a child that is not stopped: nothing to report. */
    child = idle_child();
    kill(child, SIGCONT);
    nap_ms(20);
    check(waitpid(child, &status, WCONTINUED | WNOHANG) == 0, "SIGCONT to a running child reports nothing");
    kill(child, SIGKILL);
    wait_for(child, 0);

    /* A zombie still exists until it is reaped: signalling it is no error (kill(2)). */
    child = fork();
    if (child == 0) _exit(3);
    check(reaches_state(child, 'Z'), "an ended child is a zombie until it is waited for");
    check(kill(child, 0) == 0 && kill(child, SIGTERM) == 0, "kill of a zombie succeeds");
    status = wait_for(child, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 3, "and its exit status is intact");
    check(kill(child, 0) == -1 && errno == ESRCH, "once reaped it is gone (ESRCH)");

    if (failures == 0) printf("jobs: all %d passed\n", checks);
    return failures == 0 ? 0 : 1;
}
