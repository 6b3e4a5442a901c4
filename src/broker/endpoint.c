/* Broker endpoint syntax: host:port[#sha256:<hex>] (see client.h). */
#include <errno.h>
#include <string.h>

#include "client.h"
#include "parse.h"

static bool host_char_ok(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '-';
}

int broker_endpoint_parse(const char *s, struct broker_endpoint *ret, struct ck_error **reterr)
{
        struct broker_endpoint e = {0};
        const char *hash = strchr(s, '#'), *end = hash ? hash : s + strlen(s), *colon, *h = s, *hend;
        uint64_t port = 0;

        if (hash) {
                const char *pin = hash + 1;
                if (!ck_startswith(pin, "sha256:") || strlen(pin) != 7 + 64 ||
                    ck_hex_decode(pin + 7, 64, e.pin, sizeof(e.pin)) < 0)
                        return ck_error_set(reterr, -EINVAL,
                                            "endpoint \"%.300s\": the pin must be #sha256:<64 hex digits>",
                                            s);
                e.has_pin = true;
        }
        if (*h == '[') {
                hend = memchr(h, ']', (size_t)(end - h));
                if (!hend || hend + 1 >= end || hend[1] != ':')
                        return ck_error_set(reterr, -EINVAL, "endpoint \"%.300s\": expected [ipv6]:port", s);
                colon = hend + 1;
                h++;
                for (const char *p = h; p < hend; p++)
                        if (!(host_char_ok(*p) || *p == ':'))
                                return ck_error_set(reterr, -EINVAL, "endpoint \"%.300s\": bad IPv6 address",
                                                    s);
        } else {
                colon = NULL;
                for (const char *p = h; p < end; p++)
                        if (*p == ':')
                                colon = p;
                if (!colon)
                        return ck_error_set(reterr, -EINVAL, "endpoint \"%.300s\": expected host:port", s);
                hend = colon;
                for (const char *p = h; p < hend; p++)
                        if (!host_char_ok(*p))
                                return ck_error_set(reterr, -EINVAL, "endpoint \"%.300s\": bad host name",
                                                    s);
        }
        if (hend == h || (size_t)(hend - h) >= sizeof(e.host))
                return ck_error_set(reterr, -EINVAL, "endpoint \"%.300s\": bad host", s);
        if (ck_parse_u64(colon + 1, (size_t)(end - colon - 1), 65535, &port) < 0 || port == 0)
                return ck_error_set(reterr, -EINVAL, "endpoint \"%.300s\": bad port", s);
        memcpy(e.host, h, (size_t)(hend - h));
        e.port = (unsigned)port;
        *ret = e;
        return 0;
}
