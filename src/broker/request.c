/* The broker's request-head check: the only two request forms the broker recognises, with
 * limits on size and header count. Not an HTTP parser: it recognises two fixed request lines,
 * reads Content-Length and Content-Type, and checks that the other header lines are well-formed
 * enough to be ignored safely. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "parse.h"
#include "server.h"

static bool is_token_char(uint8_t c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               strchr("!#$%&'*+-.^_`|~", c);
}

static bool header_is(const uint8_t *line, const uint8_t *colon, const char *name)
{
        size_t n = strlen(name);

        return (size_t)(colon - line) == n && strncasecmp((const char *)line, name, n) == 0;
}

int broker_request_parse(const uint8_t *buf, size_t len, size_t max, size_t max_body,
                         struct broker_request *ret)
{
        static const char get_line[] = "GET /v1/secret HTTP/1.1\r\n";
        static const char post_line[] = "POST /v1/secret HTTP/1.1\r\n";
        struct broker_request req = {0};
        bool have_length = false;
        size_t off, n_headers = 0;

        if (len > max)
                return -E2BIG;
        if (len >= sizeof(get_line) - 1 && memcmp(buf, get_line, sizeof(get_line) - 1) == 0)
                off = sizeof(get_line) - 1;
        else if (len >= sizeof(post_line) - 1 && memcmp(buf, post_line, sizeof(post_line) - 1) == 0) {
                off = sizeof(post_line) - 1;
                req.post = true;
        } else
                return -EBADMSG;
        for (;;) {
                const uint8_t *line = buf + off, *eol, *colon, *v, *vend;
                size_t llen;

                eol = memchr(line, '\r', len - off);
                if (!eol || (size_t)(eol - buf) + 1 >= len || eol[1] != '\n')
                        return -EBADMSG;
                llen = (size_t)(eol - line);
                off += llen + 2;
                if (llen == 0)
                        break; /* the empty line ends the head */
                if (++n_headers > BROKER_REQUEST_MAX_HEADERS)
                        return -E2BIG;
                colon = memchr(line, ':', llen);
                if (!colon || colon == line)
                        return -EBADMSG;
                for (const uint8_t *p = line; p < colon; p++)
                        if (!is_token_char(*p))
                                return -EBADMSG;
                for (const uint8_t *p = colon + 1; p < eol; p++)
                        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
                                return -EBADMSG;
                v = colon + 1;
                vend = eol;
                while (v < vend && (*v == ' ' || *v == '\t'))
                        v++;
                while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
                        vend--;
                if (header_is(line, colon, "Transfer-Encoding"))
                        return -EBADMSG;
                if (header_is(line, colon, "Content-Length")) {
                        uint64_t n = 0;

                        /* Digits only, no sign or leading zero (the one value of a request). */
                        if (have_length || vend == v || (vend - v > 1 && *v == '0') ||
                            ck_parse_u64((const char *)v, (size_t)(vend - v), UINT64_MAX, &n) < 0)
                                return -EBADMSG;
                        have_length = true;
                        if (n > max_body)
                                return -EFBIG;
                        req.content_length = (size_t)n;
                }
                if (header_is(line, colon, "Content-Type")) {
                        static const char cbor[] = "application/cbor";
                        if (req.content_type_cbor || (size_t)(vend - v) != sizeof(cbor) - 1 ||
                            strncasecmp((const char *)v, cbor, sizeof(cbor) - 1) != 0)
                                return -EBADMSG;
                        req.content_type_cbor = true;
                }
        }
        if (off != len)
                return -EBADMSG;
        /* GET carries nothing; POST carries the evidence and says what it is. */
        if (!req.post && req.content_length != 0)
                return -EBADMSG;
        if (req.post && (!have_length || req.content_length == 0 || !req.content_type_cbor))
                return -EBADMSG;
        *ret = req;
        return 0;
}
