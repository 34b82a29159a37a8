/*
 * replay_main.c - runs a libFuzzer target without libFuzzer: feeds it every
 * file of the corpus directories (or files) named on the command line, plus
 * deterministic mutations of each (truncations and byte flips), so the fuzz
 * corpus doubles as a regression test under ASan/UBSan in ctest.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long runs;

static void run_with_mutations(const uint8_t *data, size_t size)
{
    LLVMFuzzerTestOneInput(data, size);
    runs++;
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return;
    /* Truncations: every parser must cope with a file cut anywhere. */
    for (size_t cut = 0; cut < size; cut += (size / 64) + 1) {
        memcpy(copy, data, cut);
        LLVMFuzzerTestOneInput(copy, cut);
        runs++;
    }
    /* Byte flips with a fixed seed: reproducible. */
    unsigned seed = 12345;
    for (int i = 0; i < 256 && size; i++) {
        memcpy(copy, data, size);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245u + 12345u;
            copy[(seed >> 8) % size] ^= (uint8_t)(seed >> 24 | 1);
        }
        LLVMFuzzerTestOneInput(copy, size);
        runs++;
    }
    free(copy);
}

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    run_with_mutations(buf, (size_t)len);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (replay_file(argv[i]) != 0)
                return 1;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (replay_file(path) != 0)
                return 1;
            files++;
        }
        if (d)
            closedir(d);
    }
    if (files == 0) {
        fprintf(stderr, "replay: no corpus files given\n");
        return 1;
    }
    printf("replay: %d corpus files, %lu runs, no crash\n", files, runs);
    return 0;
}
