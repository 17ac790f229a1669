/* Checks a sandbox manifest's path rules (paths.syscalls: read /etc and /tmp, write /tmp,
 * execute /bin/hello-musl) from the confined program's side: what its rules name works, the
 * rest is EACCES — by name, through "..", through a link, by rename, in a forked child and for
 * execve. Run as "paths confined" under the sandbox, "paths free" under a policy without path
 * rules (the same calls then succeed). Prints one line per failed check and "paths: all N
 * passed"; exit 0 when all pass. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int checks, failures;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
        printf("paths: FAILED %s (errno %d)\n", what, errno);
    }
}

/* The call's result: 0 if it succeeded, else errno (closing what open made). */
static int opened(const char *path, int flags) {
    int fd = open(path, flags, 0644);
    if (fd < 0) return errno;
    close(fd);
    return 0;
}

/* How a forked child running `program` ended: its exit code, or 100 + execve's errno. */
static int exec_status(const char *program) {
    pid_t child = fork();
    if (child == 0) {
        char *argv[] = {(char *)program, NULL};
        execve(program, argv, argv + 1);
        _exit(100 + errno);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char **argv) {
    int confined = argc > 1 && strcmp(argv[1], "confined") == 0;
    int denied = confined ? EACCES : 0;

    check(opened("/etc/motd", O_RDONLY) == 0, "read a file under a readable prefix");
    check(opened("/etc/motd", O_WRONLY) == denied, "write a file under a read-only prefix");
    check(opened("/bin/hello-musl", O_RDONLY) == denied, "read a file under no prefix");
    check(opened("/tmp/paths-a", O_CREAT | O_WRONLY | O_TRUNC) == 0, "create a file under a writable prefix");
    check(mkdir("/paths-dir", 0755) == (confined ? -1 : 0) && (!confined || errno == EACCES),
          "mkdir outside every prefix");
    if (!confined) rmdir("/paths-dir");

    /* Links are followed before the check: a link in /tmp reaches only what its target may. */
    check(symlink("/etc/motd", "/tmp/paths-to-etc") == 0, "symlink under a writable prefix");
    check(opened("/tmp/paths-to-etc", O_RDONLY) == 0, "read through a link to a readable file");
    check(opened("/tmp/paths-to-etc", O_WRONLY) == denied, "write through a link to a read-only file");
    check(symlink("/bin", "/tmp/paths-to-bin") == 0, "symlink to a directory under no prefix");
    check(opened("/tmp/paths-to-bin/hello-musl", O_RDONLY) == denied, "read through a linked directory");
    struct stat info;
    check((stat("/tmp/paths-to-bin/hello-musl", &info) == 0 ? 0 : errno) == denied, "stat through a linked directory");

    /* ".." is resolved, not compared as text. */
    check(chdir("/tmp") == 0, "chdir to a readable directory");
    check(opened("../etc/motd", O_RDONLY) == 0, "read by a relative path with ..");
    check(opened("../bin/hello-musl", O_RDONLY) == denied, "read outside by a relative path with ..");
    check((chdir("/") == 0 ? 0 : errno) == denied, "chdir to a directory under no prefix");

    /* A rename is a write at both ends. */
    check((rename("/tmp/paths-a", "/etc/paths-a") == 0 ? 0 : errno) == denied, "rename out of a writable prefix");
    if (!confined) rename("/etc/paths-a", "/tmp/paths-a");
    check(rename("/tmp/paths-a", "/tmp/paths-b") == 0, "rename within a writable prefix");

    /* Children keep their parent's rules; execve needs the execute rule. */
    pid_t child = fork();
    if (child == 0) _exit(opened("/etc/motd", O_WRONLY));
    int status = 0;
    check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == denied,
          "a forked child is confined as its parent");
    check(exec_status("/bin/hello-musl") == 42, "execve of a program with the execute rule");
    check(exec_status("/bin/write-hello") == (confined ? 100 + EACCES : 0), "execve of a program without it");

    check(unlink("/tmp/paths-b") == 0 && unlink("/tmp/paths-to-etc") == 0 && unlink("/tmp/paths-to-bin") == 0,
          "unlink under a writable prefix");
    if (failures == 0) printf("paths: all %d passed\n", checks);
    return failures == 0 ? 0 : 1;
}
