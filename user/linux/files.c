/* Checks the file calls a Unix program makes: open with O_CREAT/O_EXCL/O_TRUNC/O_APPEND/
 * O_DIRECTORY, read/write/pread/pwrite/lseek, fstat/stat/lstat, directories (mkdir, rmdir,
 * getdents through readdir, chdir, getcwd), rename, unlink, symlink/readlink, dup/dup2/fcntl,
 * access, umask, ftruncate, /dev/null and /dev/zero, and files of the boot image. Works in a
 * fresh directory under /tmp; prints one line per failed check and "files: all N passed"; exit
 * 0 when all pass. The same binary passes on Linux. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

static int checks, failures;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
        printf("files: FAILED %s (errno %d)\n", what, errno);
    }
}

/* The head of Linux's struct statx (uapi/linux/stat.h; musl 1.2.3 has no wrapper). */
struct statx_record {
    uint32_t mask, block_size;
    uint64_t attributes;
    uint32_t links, uid, gid;
    uint16_t mode, pad;
    uint64_t inode, size, blocks, attributes_mask;
    char rest[256 - 64];
};
#define STATX_BASIC_STATS 0x7ffu

static long raw_statx(int dirfd, const char *path, int flags, struct statx_record *out) {
    return syscall(332, dirfd, path, flags, STATX_BASIC_STATS, out);
}

static int has_entry(const char *directory, const char *name) {
    DIR *listing = opendir(directory);
    if (!listing) return 0;
    struct dirent *entry;
    int found = 0;
    while ((entry = readdir(listing)) != NULL) found |= strcmp(entry->d_name, name) == 0;
    closedir(listing);
    return found;
}

int main(void) {
    char work[64];
    snprintf(work, sizeof work, "/tmp/files-%d", (int)getpid());
    check(mkdir(work, 0755) == 0, "mkdir of the work directory");
    check(chdir(work) == 0, "chdir into it");
    char cwd[128];
    check(getcwd(cwd, sizeof cwd) != NULL && strcmp(cwd, work) == 0, "getcwd names it");
    char tiny[4];
    check(getcwd(tiny, sizeof tiny) == NULL && errno == ERANGE, "getcwd into too small a buffer: ERANGE");

    int fd = open("a.txt", O_CREAT | O_EXCL | O_WRONLY, 0644);
    check(fd >= 3, "open O_CREAT|O_EXCL makes a file");
    check(write(fd, "hello, ", 7) == 7 && write(fd, "world\n", 6) == 6, "write");
    check(close(fd) == 0, "close");
    check(open("a.txt", O_CREAT | O_EXCL | O_WRONLY, 0644) == -1 && errno == EEXIST, "O_EXCL on an existing file: EEXIST");
    fd = open("a.txt", O_RDONLY);
    char buffer[64] = {0};
    check(read(fd, buffer, sizeof buffer) == 13 && strcmp(buffer, "hello, world\n") == 0, "read what was written");
    check(read(fd, buffer, sizeof buffer) == 0, "read at the end: 0");
    check(lseek(fd, 7, SEEK_SET) == 7 && read(fd, buffer, 5) == 5 && memcmp(buffer, "world", 5) == 0, "lseek then read");
    check(pread(fd, buffer, 5, 0) == 5 && memcmp(buffer, "hello", 5) == 0 && lseek(fd, 0, SEEK_CUR) == 12,
          "pread leaves the offset");
    check(write(fd, "x", 1) == -1 && errno == EBADF, "write to a read-only descriptor: EBADF");
    struct stat info;
    check(fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && info.st_size == 13, "fstat: a 13-byte regular file");
    struct statx_record extended;
    check(raw_statx(AT_FDCWD, "a.txt", 0, &extended) == 0 && S_ISREG(extended.mode) && extended.size == 13 &&
              extended.inode == info.st_ino && (extended.mask & STATX_BASIC_STATS) == STATX_BASIC_STATS,
          "statx: the same file, the basic fields");
    check(raw_statx(fd, "", AT_EMPTY_PATH, &extended) == 0 && extended.size == 13, "statx of a descriptor (AT_EMPTY_PATH)");
    close(fd);

    fd = open("a.txt", O_WRONLY | O_APPEND);
    check(write(fd, "more\n", 5) == 5, "O_APPEND write");
    close(fd);
    check(stat("a.txt", &info) == 0 && info.st_size == 18, "stat after append: 18 bytes");
    fd = open("a.txt", O_RDWR | O_TRUNC);
    check(fstat(fd, &info) == 0 && info.st_size == 0, "O_TRUNC empties it");
    check(pwrite(fd, "zz", 2, 10) == 2 && fstat(fd, &info) == 0 && info.st_size == 12, "pwrite past the end grows it");
    check(pread(fd, buffer, 3, 8) == 3 && buffer[0] == 0 && buffer[2] == 'z', "the gap reads as zeros");
    check(ftruncate(fd, 4) == 0 && fstat(fd, &info) == 0 && info.st_size == 4, "ftruncate");

    int copy = dup(fd);
    check(copy > fd, "dup takes the lowest free descriptor");
    check(lseek(fd, 1, SEEK_SET) == 1 && lseek(copy, 0, SEEK_CUR) == 1, "a dup shares the offset");
    check(dup2(fd, 20) == 20 && fcntl(20, F_GETFD) == 0, "dup2 to 20");
    check(fcntl(20, F_SETFD, FD_CLOEXEC) == 0 && fcntl(20, F_GETFD) == FD_CLOEXEC, "F_SETFD close-on-exec");
    check(fcntl(fd, F_DUPFD, 30) == 30, "F_DUPFD at or above 30");
    check((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR, "F_GETFL: read-write");
    check(close(copy) == 0 && close(20) == 0 && close(30) == 0 && close(fd) == 0, "closing the copies");
    check(close(fd) == -1 && errno == EBADF, "closing twice: EBADF");

    check(mkdir("sub", 0755) == 0 && mkdir("sub", 0755) == -1 && errno == EEXIST, "mkdir, and again: EEXIST");
    check(open("sub", O_WRONLY) == -1 && errno == EISDIR, "opening a directory to write: EISDIR");
    check(open("a.txt", O_RDONLY | O_DIRECTORY) == -1 && errno == ENOTDIR, "O_DIRECTORY on a file: ENOTDIR");
    check(rename("a.txt", "sub/b.txt") == 0, "rename into a subdirectory");
    check(access("a.txt", F_OK) == -1 && errno == ENOENT && access("sub/b.txt", R_OK | W_OK) == 0, "the file moved");
    check(has_entry("sub", "b.txt") && has_entry("sub", ".") && has_entry("sub", ".."), "readdir lists it");
    check(rmdir("sub") == -1 && errno == ENOTEMPTY, "rmdir of a non-empty directory: ENOTEMPTY");
    check(symlink("sub/b.txt", "link") == 0, "symlink");
    char target[64] = {0};
    check(readlink("link", target, sizeof target) == 9 && strcmp(target, "sub/b.txt") == 0, "readlink");
    check(lstat("link", &info) == 0 && S_ISLNK(info.st_mode), "lstat sees the link");
    check(stat("link", &info) == 0 && S_ISREG(info.st_mode) && info.st_size == 4, "stat follows it");
    check(symlink("loop", "loop") == 0 && open("loop", O_RDONLY) == -1 && errno == ELOOP, "a link loop: ELOOP");
    check(unlink("link") == 0 && unlink("loop") == 0 && unlink("sub/b.txt") == 0, "unlink");
    check(unlink("sub") == -1 && errno == EISDIR, "unlink of a directory: EISDIR");
    check(rmdir("sub") == 0 && access("sub", F_OK) == -1, "rmdir");
    check(open("nope/x", O_RDONLY) == -1 && errno == ENOENT, "a missing path: ENOENT");

    mode_t old = umask(077);
    fd = open("private", O_CREAT | O_WRONLY, 0666);
    check(fd >= 0 && fstat(fd, &info) == 0 && (info.st_mode & 0777) == 0600, "umask 077 makes 0600");
    umask(old);
    close(fd);
    unlink("private");

    fd = open("/dev/null", O_RDWR);
    check(fd >= 0 && write(fd, "gone", 4) == 4 && read(fd, buffer, 8) == 0, "/dev/null");
    close(fd);
    fd = open("/dev/zero", O_RDONLY);
    memset(buffer, 7, 8);
    check(fd >= 0 && read(fd, buffer, 8) == 8 && buffer[0] == 0 && buffer[7] == 0, "/dev/zero");
    close(fd);
    check(stat("/dev/null", &info) == 0 && S_ISCHR(info.st_mode), "/dev/null is a character device");
    check(access("/bin/files", X_OK) == 0 || access("/proc/self/exe", F_OK) == 0, "the program itself is executable");

    check(chdir("/") == 0 && rmdir(work) == 0, "leave and remove the work directory");
    if (failures == 0) printf("files: all %d passed\n", checks);
    return failures == 0 ? 0 : 1;
}
