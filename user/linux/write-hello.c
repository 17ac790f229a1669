/* Writes "write-hello: hello" with a bare write(2) and exits 0 — or, when the write fails,
 * exits 3 with nothing printed. Its manifest (write-hello.syscalls) leaves write out, so under
 * policy-sandbox the write is denied and the denial names `write`. */
#include <unistd.h>

int main(void) {
    static const char line[] = "write-hello: hello\n";
    return write(1, line, sizeof line - 1) == sizeof line - 1 ? 0 : 3;
}
