/* The first Linux program: a static musl C "hello world" that also shows its arguments and
 * ends with a code of its own, so a test sees output, argv and the exit code. */
#include <stdio.h>

int main(int argc, char **argv) {
    printf("hello from musl: argc %d", argc);
    for (int i = 0; i < argc; i++) {
        printf(", argv[%d] \"%s\"", i, argv[i]);
    }
    printf("\n");
    return 42;
}
