/* Checks execve: a child replaces itself with this program again (argv[1] says which check it
 * is), and the parent reads the result from its exit status. Covered: argv and envp arrive,
 * close-on-exec descriptors are closed and the others kept, caught signals go back to their
 * default while ignored ones and the mask survive, a `#!` script runs under its interpreter
 * with Linux's argument order, and the errors (no such file, a directory, no execute bit, not
 * an executable, a bad pointer) leave the caller running. argv[1] (parent) sets how many
 * fork + execve + wait rounds follow (the test counts frames after). Prints one line per failed
 * check and "execve: all N passed"; exit 0 when all pass. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SELF "/bin/execve"
#define SCRIPT "/tmp/execve-script"

static int checks, failures;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
        printf("execve: FAILED %s (errno %d)\n", what, errno);
    }
}

/* Runs SELF in a child with `argv` and `envp`; its exit code, or -1. */
static int run_child(const char *path, char *const argv[], char *const envp[]) {
    pid_t child = fork();
    if (child == 0) {
        execve(path, argv, envp);
        _exit(100 + errno);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

static int child_main(int argc, char **argv) {
    const char *role = argv[1];
    if (strcmp(role, "child-env") == 0) {
        const char *value = getenv("HERALD_EXEC");
        return strcmp(argv[0], "renamed") == 0 && value && strcmp(value, "yes") == 0 && argc == 3 &&
                       strcmp(argv[2], "two words") == 0
                   ? 3
                   : 1;
    }
    if (strcmp(role, "child-fds") == 0) {
        int closed = atoi(argv[2]), kept = atoi(argv[3]);
        char byte;
        int closed_gone = fcntl(closed, F_GETFD) == -1 && errno == EBADF;
        int kept_open = fcntl(kept, F_GETFD) == 0 && read(kept, &byte, 1) == 1;
        return closed_gone && kept_open ? 4 : 1;
    }
    if (strcmp(role, "child-signals") == 0) {
        struct sigaction action;
        sigset_t mask;
        sigaction(SIGUSR1, NULL, &action);
        int caught_reset = action.sa_handler == SIG_DFL;
        sigaction(SIGUSR2, NULL, &action);
        int ignored_kept = action.sa_handler == SIG_IGN;
        sigprocmask(SIG_BLOCK, NULL, &mask);
        int mask_kept = sigismember(&mask, SIGTERM) == 1;
        return caught_reset && ignored_kept && mask_kept ? 6 : 1;
    }
    if (strcmp(role, "child-script") == 0) {
        return argc == 5 && strcmp(argv[0], SELF) == 0 && strcmp(argv[2], SCRIPT) == 0 &&
                       strcmp(argv[3], "one") == 0 && strcmp(argv[4], "2") == 0
                   ? 5
                   : 1;
    }
    if (strcmp(role, "child-exit") == 0) return 7;
    return 2;
}

static void on_signal(int signal) { (void)signal; }

int main(int argc, char **argv) {
    if (argc > 1 && strncmp(argv[1], "child-", 6) == 0) return child_main(argc, argv);
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    char *no_env[] = {NULL};

    char *env_argv[] = {"renamed", "child-env", "two words", NULL};
    char *env[] = {"HERALD_EXEC=yes", NULL};
    check(run_child(SELF, env_argv, env) == 3, "argv and envp reach the new program");

    int closed = open("/etc/motd", O_RDONLY | O_CLOEXEC);
    int kept = open("/etc/motd", O_RDONLY);
    char closed_text[12], kept_text[12];
    snprintf(closed_text, sizeof closed_text, "%d", closed);
    snprintf(kept_text, sizeof kept_text, "%d", kept);
    char *fd_argv[] = {SELF, "child-fds", closed_text, kept_text, NULL};
    check(closed >= 0 && kept >= 0 && run_child(SELF, fd_argv, no_env) == 4,
          "O_CLOEXEC descriptors close on exec, others stay open");
    close(closed);
    close(kept);

    struct sigaction action = {0};
    action.sa_handler = on_signal;
    sigaction(SIGUSR1, &action, NULL);
    action.sa_handler = SIG_IGN;
    sigaction(SIGUSR2, &action, NULL);
    sigset_t mask, old_mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, &old_mask);
    char *signal_argv[] = {SELF, "child-signals", NULL};
    check(run_child(SELF, signal_argv, no_env) == 6,
          "a caught signal is default after exec, an ignored one stays ignored, the mask stays");
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    action.sa_handler = SIG_DFL;
    sigaction(SIGUSR1, &action, NULL);
    sigaction(SIGUSR2, &action, NULL);

    int script = open(SCRIPT, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    const char *line = "#!" SELF " child-script\necho never run\n";
    check(script >= 0 && write(script, line, strlen(line)) == (ssize_t)strlen(line), "write a script");
    close(script);
    char *script_argv[] = {"execve-script", "one", "2", NULL};
    check(run_child(SCRIPT, script_argv, no_env) == 5, "a #! script runs under its interpreter");
    unlink(SCRIPT);

    char *plain_argv[] = {"x", NULL};
    errno = 0;
    check(execve("/no/such/program", plain_argv, no_env) == -1 && errno == ENOENT, "no such file: ENOENT");
    errno = 0;
    check(execve("/tmp", plain_argv, no_env) == -1 && errno == EACCES, "a directory: EACCES");
    errno = 0;
    check(execve("/etc/motd", plain_argv, no_env) == -1 && errno == EACCES, "no execute bit: EACCES");
    int junk = open("/tmp/execve-junk", O_WRONLY | O_CREAT | O_TRUNC, 0755);
    check(junk >= 0 && write(junk, "not a program\n", 14) == 14, "write a non-program");
    close(junk);
    errno = 0;
    check(execve("/tmp/execve-junk", plain_argv, no_env) == -1 && errno == ENOEXEC, "not an executable: ENOEXEC");
    unlink("/tmp/execve-junk");
    errno = 0;
    check(execve(SELF, (char **)16, no_env) == -1 && errno == EFAULT, "a bad argv pointer: EFAULT");
    char *bad_strings[] = {"x", (char *)16, NULL};
    errno = 0;
    check(execve(SELF, bad_strings, no_env) == -1 && errno == EFAULT, "a bad argument string: EFAULT");

    char *exit_argv[] = {SELF, "child-exit", NULL};
    int all_seven = 1;
    for (int round = 0; round < rounds; round++) all_seven &= run_child(SELF, exit_argv, no_env) == 7;
    check(all_seven, "fork + execve + wait rounds all exit 7");

    if (failures == 0) printf("execve: all %d passed\n", checks);
    return failures == 0 ? 0 : 1;
}
