/* The broker's request-head check: the only request form the broker accepts, with limits on
 * size and header count. Not an HTTP parser: it recognises one fixed request line and checks
 * that the header lines are well-formed enough to be ignored safely. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "parse.h"
#include "reader.h"
#include "server.h"

static bool is_token_char(uint8_t c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               strchr("!#$%&'*+-.^_`|~", c);
}

int broker_request_check(const uint8_t *buf, size_t len, size_t max)
{
        static const char request_line[] = "GET /v1/secret HTTP/1.1\r\n";
        size_t off, n_headers = 0;

        if (len > max)
                return -E2BIG;
        if (len < sizeof(request_line) - 1 || memcmp(buf, request_line, sizeof(request_line) - 1) != 0)
                return -EBADMSG;
        off = sizeof(request_line) - 1;
        for (;;) {
                const uint8_t *line = buf + off, *eol, *colon;
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
                if ((size_t)(colon - line) == 17 &&
                    strncasecmp((const char *)line, "Transfer-Encoding", 17) == 0)
                        return -EBADMSG;
                if ((size_t)(colon - line) == 14 &&
                    strncasecmp((const char *)line, "Content-Length", 14) == 0) {
                        const uint8_t *v = colon + 1;
                        while (v < eol && (*v == ' ' || *v == '\t'))
                                v++;
                        if (eol - v != 1 || *v != '0')
                                return -EBADMSG;
                }
        }
        return off == len ? 0 : -EBADMSG;
}

/* Framing only: enough of the head to know where the request ends. The request check (above)
 * decides whether the request is one the broker accepts. */
int broker_request_body_length(const uint8_t *head, size_t head_len, size_t max_body, size_t *ret)
{
        size_t off = 0, body = 0;
        bool seen = false;

        /* Skip the request line; each header line ends with CRLF, the last line is empty. */
        for (;;) {
                const uint8_t *line = head + off, *eol, *colon;
                size_t llen;

                eol = off < head_len ? memchr(line, '\n', head_len - off) : NULL;
                if (!eol)
                        return -EBADMSG;
                llen = (size_t)(eol - line);
                off += llen + 1;
                if (line == head)
                        continue;
                if (llen <= 1)
                        break;
                colon = memchr(line, ':', llen);
                if (!colon)
                        continue; /* malformed: the request check refuses it */
                if ((size_t)(colon - line) == 17 &&
                    strncasecmp((const char *)line, "Transfer-Encoding", 17) == 0)
                        return -EBADMSG;
                if ((size_t)(colon - line) == 14 &&
                    strncasecmp((const char *)line, "Content-Length", 14) == 0) {
                        const uint8_t *v = colon + 1, *e = eol;
                        uint64_t n = 0;

                        if (seen)
                                return -EBADMSG;
                        seen = true;
                        while (v < e && (*v == ' ' || *v == '\t'))
                                v++;
                        while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                                e--;
                        if (ck_parse_u64((const char *)v, (size_t)(e - v), UINT64_MAX, &n) < 0)
                                return -EBADMSG;
                        if (n > max_body)
                                return -E2BIG;
                        body = (size_t)n;
                }
        }
        *ret = body;
        return 0;
}
