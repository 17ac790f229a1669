/* Checks /proc as Linux programs read it: self (a link to the caller's pid), self/status,
 * self/stat, self/cmdline, self/exe, uptime, meminfo, a listing of /proc, and another
 * process's state as it sleeps, ends (a zombie) and is reaped (gone). Run as
 * "procfs a 'b c'". Prints one line per failed check and "procfs: all N passed"; exit 0 when
 * all pass. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int checks, failures;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
        printf("procfs: FAILED %s (errno %d)\n", what, errno);
    }
}

/* Reads all of `path` into `buffer` (NUL-terminated); the length, or -1. */
static int slurp(const char *path, char *buffer, int size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int len = 0, got;
    while (len < size - 1 && (got = read(fd, buffer + len, size - 1 - len)) > 0) len += got;
    close(fd);
    buffer[len] = 0;
    return len;
}

/* The state letter of process `pid` from its stat line, or 0 if it cannot be read. */
static char state_of(pid_t pid) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (slurp(path, line, sizeof line) <= 0) return 0;
    char *end = strrchr(line, ')');
    return end && end[1] == ' ' ? end[2] : 0;
}

/* Waits (up to 10 s) for process `pid` to be in state `state`. */
static int reaches(pid_t pid, char state) {
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 1000; i++) {
        if (state_of(pid) == state) return 1;
        nanosleep(&tick, NULL);
    }
    return 0;
}

int main(int argc, char **argv) {
    char buffer[4096], expected[128];
    pid_t pid = getpid();

    int len = readlink("/proc/self", buffer, sizeof buffer - 1);
    snprintf(expected, sizeof expected, "%d", (int)pid);
    check(len > 0 && (buffer[len] = 0, strcmp(buffer, expected) == 0), "/proc/self links to the caller's pid");

    check(slurp("/proc/self/status", buffer, sizeof buffer) > 0, "read /proc/self/status");
    snprintf(expected, sizeof expected, "\nPid:\t%d\n", (int)pid);
    check(strstr(buffer, expected) != NULL, "status names the pid");
    snprintf(expected, sizeof expected, "\nPPid:\t%d\n", (int)getppid());
    check(strstr(buffer, expected) != NULL, "status names the parent");
    check(strncmp(buffer, "Name:\tprocfs\n", 13) == 0, "status starts with the name");
    check(strstr(buffer, "State:\tR (running)") != NULL, "the reader is running");

    check(slurp("/proc/self/stat", buffer, sizeof buffer) > 0, "read /proc/self/stat");
    snprintf(expected, sizeof expected, "%d (procfs) R %d ", (int)pid, (int)getppid());
    check(strncmp(buffer, expected, strlen(expected)) == 0, "stat: pid, (name), state, parent");
    int fields = 1;
    for (char *at = buffer; *at; at++) fields += *at == ' ';
    check(fields == 52, "stat has 52 fields");

    char arguments[256];
    int arguments_len = 0;
    for (int i = 0; i < argc; i++) {
        int n = strlen(argv[i]) + 1;
        memcpy(arguments + arguments_len, argv[i], n);
        arguments_len += n;
    }
    len = slurp("/proc/self/cmdline", buffer, sizeof buffer);
    check(len == arguments_len && memcmp(buffer, arguments, len) == 0, "cmdline: the arguments, each ended by a zero");
    len = readlink("/proc/self/exe", buffer, sizeof buffer - 1);
    check(len > 7 && (buffer[len] = 0, strcmp(buffer + len - 7, "/procfs") == 0), "exe links to the program");
    check(argc == 3 && strcmp(argv[2], "b c") == 0, "argv matches");

    double up = 0, idle = -1;
    check(slurp("/proc/uptime", buffer, sizeof buffer) > 0 && sscanf(buffer, "%lf %lf", &up, &idle) == 2 && up > 0 && idle >= 0,
          "uptime: two numbers of seconds");
    long total = 0, free_kb = 0;
    check(slurp("/proc/meminfo", buffer, sizeof buffer) > 0, "read /proc/meminfo");
    char *at = strstr(buffer, "MemTotal:");
    if (at) total = strtol(at + 9, NULL, 10);
    at = strstr(buffer, "MemFree:");
    if (at) free_kb = strtol(at + 8, NULL, 10);
    check(total > 0 && free_kb > 0 && free_kb <= total, "meminfo: MemTotal and MemFree in kB");

    DIR *listing = opendir("/proc");
    int saw_self = 0, saw_pid = 0;
    snprintf(expected, sizeof expected, "%d", (int)pid);
    struct dirent *entry;
    while (listing && (entry = readdir(listing)) != NULL) {
        saw_self |= strcmp(entry->d_name, "self") == 0;
        saw_pid |= strcmp(entry->d_name, expected) == 0 && entry->d_type == DT_DIR;
    }
    if (listing) closedir(listing);
    check(saw_self && saw_pid, "/proc lists self and the caller's directory");
    struct stat info;
    check(stat("/proc/self", &info) == 0 && S_ISDIR(info.st_mode), "stat /proc/self: a directory");

    check(open("/proc/uptime", O_WRONLY | O_TRUNC) < 0 || write(3, "x", 1) < 0, "/proc/uptime cannot be written");
    check(mkdir("/proc/made", 0755) == -1, "nothing is made in /proc");
    check(open("/proc/999999/status", O_RDONLY) == -1 && errno == ENOENT, "no directory for a pid that is not");

    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    check(reaches(child, 'S'), "a child in pause() is sleeping (S)");
    kill(child, SIGKILL);
    check(reaches(child, 'Z'), "a killed child not yet reaped is a zombie (Z)");
    int status;
    check(waitpid(child, &status, 0) == child, "waitpid");
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)child);
    check(open(path, O_RDONLY) == -1 && errno == ENOENT, "a reaped child's directory is gone");

    if (failures == 0) printf("procfs: all %d passed\n", checks);
    return failures == 0 ? 0 : 1;
}
