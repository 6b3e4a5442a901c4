/* Unit tests for logging: one line per message whatever the message holds, in text and JSON. */
#include "cmocka-wrap.h"

#include <jansson.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fs.h"
#include "json.h"
#include "log.h"
#include "parse.h"

/* A message as a registry, an image or a broker could make it: a newline with a forged line
 * after it, a terminal escape, a lone continuation byte, a truncated sequence, and UTF-8 that
 * must stay as it is. */
#define HOSTILE "pull: a\nconkerd[1] info: secret released \x1b[2J\x80 ok \xc3\xa9 \xe2\x82"
#define SHOWN   "pull: a\\x0aconkerd[1] info: secret released \\x1b[2J\\x80 ok \xc3\xa9 \\xe2\\x82"

/* What one log call writes to stderr. */
static char *logged(const char *msg)
{
        _cleanup_close_ int fd = memfd_create("log", MFD_CLOEXEC);
        int saved = dup(STDERR_FILENO);
        uint8_t *out = NULL;
        size_t n = 0;

        assert_true(fd >= 0 && saved >= 0);
        assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
        log_warn("%s", msg);
        assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
        close(saved);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        assert_int_equal(ck_read_fd(fd, 4096, &out, &n), 0);
        return (char *)out;
}

static void test_text_line(void **state)
{
        _cleanup_free_ char *line = NULL, *plain = NULL;

        ck_log_set_json(0);
        line = logged(HOSTILE);
        assert_non_null(strstr(line, " warn: " SHOWN "\n"));
        assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
        plain = logged("nothing to escape: caf\xc3\xa9");
        assert_non_null(strstr(plain, " warn: nothing to escape: caf\xc3\xa9\n"));
}

static void test_json_line(void **state)
{
        _cleanup_free_ char *line = NULL;
        _cleanup_json_ json_t *j = NULL;

        /* Before, a message that was not UTF-8 made no JSON line at all. */
        ck_log_set_json(1);
        line = logged(HOSTILE);
        ck_log_set_json(0);
        assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
        j = json_loads(line, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "msg")), SHOWN);
        assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
}

static void test_utf8_char_len(void **state)
{
        static const struct {
                const char *s;
                size_t left, want;
        } cases[] = {
                {"a", 1, 1},
                {"\xc3\xa9", 2, 2},
                {"\xe2\x82\xac", 3, 3},
                {"\xf0\x9f\x98\x80", 4, 4},
                {"\xf4\x8f\xbf\xbf", 4, 4}, /* U+10FFFF */
                {"\x80", 1, 0},             /* continuation */
                {"\xc0\x80", 2, 0},         /* overlong NUL */
                {"\xc1\xbf", 2, 0},         /* overlong */
                {"\xe0\x80\x80", 3, 0},     /* overlong */
                {"\xed\xa0\x80", 3, 0},     /* surrogate */
                {"\xf0\x80\x80\x80", 4, 0}, /* overlong */
                {"\xf4\x90\x80\x80", 4, 0}, /* past U+10FFFF */
                {"\xf5\x80\x80\x80", 4, 0},
                {"\xe2\x82\xac", 2, 0}, /* cut by the end */
                {"\xe2\x28\xac", 3, 0}, /* not a continuation */
                {"", 0, 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                if (ck_utf8_char_len((const unsigned char *)cases[i].s, cases[i].left) != cases[i].want)
                        fail_msg("case %zu", i);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_text_line),
                cmocka_unit_test(test_json_line),
                cmocka_unit_test(test_utf8_char_len),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
