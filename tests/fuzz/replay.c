/* Replays a corpus through a fuzz target without libFuzzer: every regular file in the given
 * directories (or the files given) is passed to LLVMFuzzerTestOneInput once. Used by the
 * fuzz-regress test suite so that seeds and past crash inputs are run on every build. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(int dirfd, const char *name, unsigned *count)
{
        _cleanup_free_ uint8_t *data = NULL, *exact = NULL;
        size_t len = 0;
        int r = ck_read_file_at(dirfd, name, 64 << 20, &data, &len, NULL);

        if (r < 0) {
                fprintf(stderr, "replay: cannot read %s: %s\n", name, strerror(-r));
                return r;
        }
        /* In a buffer of exactly the input's size, as libFuzzer passes it: ck_read_file_at's
         * buffer has slack past the end, where ASan would not see an over-read. */
        exact = malloc(len ? len : 1);
        if (!exact)
                return -ENOMEM;
        if (len)
                memcpy(exact, data, len);
        LLVMFuzzerTestOneInput(exact, len);
        (*count)++;
        return 0;
}

int main(int argc, char **argv)
{
        unsigned count = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (replay_file(AT_FDCWD, argv[i], &count) < 0)
                                return 1;
                        continue;
                }
                struct dirent **names = NULL;
                int n = scandir(argv[i], &names, NULL, alphasort);
                if (n < 0) {
                        fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                _cleanup_close_ int dfd = open(argv[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                for (int k = 0; k < n; k++) {
                        struct stat fst;
                        if (dfd >= 0 && fstatat(dfd, names[k]->d_name, &fst, 0) == 0 &&
                            S_ISREG(fst.st_mode) && replay_file(dfd, names[k]->d_name, &count) < 0)
                                return 1;
                        free(names[k]);
                }
                free(names);
        }
        if (count == 0) {
                fprintf(stderr, "replay: no corpus files found\n");
                return 1;
        }
        printf("replay: %u inputs ran without a crash\n", count);
        return 0;
}
