/* Image references: parsing and normalisation with the rules of Docker's distribution/reference
 * (see docs/image.md, "Pulling").
 *
 * Grammar, name[:tag][@digest]:
 *   name            = [domain "/"] path-component ("/" path-component)*
 *   domain          = host [":" port]
 *   host            = domain-component ("." domain-component)* | "[" ipv6 "]"
 *   path-component  = alnum+ (separator alnum+)*, separator = "." | "_" | "__" | "-"+
 *   tag             = [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 * The first component is a domain only when it contains "." or ":", is "localhost" or has an
 * upper-case letter; otherwise the domain is docker.io, and a one-component name gets
 * "library/". "index.docker.io" is "docker.io". With a tag and a digest, the digest wins.
 *
 * The parser walks the string with explicit indexes; no regular expressions, so every rule is
 * visible and each error can say which one was broken. */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "parse.h"
#include "reference.h"

#define DEFAULT_DOMAIN        "docker.io"
#define LEGACY_DEFAULT_DOMAIN "index.docker.io"
#define OFFICIAL_REPO_PREFIX  "library/"
#define DEFAULT_TAG           "latest"
#define NAME_TOTAL_MAX        255
#define TAG_MAX               128

static bool is_lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
        return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_word(char c)
{
        return is_alnum(c) || c == '_';
}

/* One path component s[0..len): alnum+ (separator alnum+)*. Case is checked separately (so that
 * the error can say "must be lowercase"), so here upper-case letters count as alphanumeric. */
static bool path_component_valid(const char *s, size_t len)
{
        size_t i = 0;

        if (len == 0 || !is_alnum(s[0]))
                return false;
        while (i < len) {
                size_t run = 0;

                while (i < len && is_alnum(s[i]))
                        i++;
                if (i == len)
                        return true;
                /* A separator: ".", "_", "__" or one or more "-". */
                if (s[i] == '.') {
                        run = 1;
                } else if (s[i] == '_') {
                        run = (i + 1 < len && s[i + 1] == '_') ? 2 : 1;
                } else if (s[i] == '-') {
                        while (i + run < len && s[i + run] == '-')
                                run++;
                } else {
                        return false;
                }
                i += run;
                if (i >= len || !is_alnum(s[i]))
                        return false;
        }
        return true;
}

/* domain-component = [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9] */
static bool domain_component_valid(const char *s, size_t len)
{
        if (len == 0 || !is_alnum(s[0]) || !is_alnum(s[len - 1]))
                return false;
        for (size_t i = 1; i + 1 < len; i++)
                if (!is_alnum(s[i]) && s[i] != '-')
                        return false;
        return true;
}

static bool host_valid(const char *s, size_t len)
{
        size_t start = 0;

        if (len >= 2 && s[0] == '[') {
                if (s[len - 1] != ']' || len == 2)
                        return false;
                for (size_t i = 1; i + 1 < len; i++)
                        if (!isxdigit((unsigned char)s[i]) && s[i] != ':')
                                return false;
                return true;
        }
        for (size_t i = 0; i <= len; i++) {
                if (i == len || s[i] == '.') {
                        if (!domain_component_valid(s + start, i - start))
                                return false;
                        start = i + 1;
                }
        }
        return true;
}

/* host [":" port]; the port is 1-5 digits up to 65535. */
static bool domain_valid(const char *s, size_t len)
{
        const char *colon = NULL;
        uint64_t port = 0;

        /* The port colon is the last one, unless it is inside the brackets of an IPv6 host. */
        for (size_t i = len; i > 0; i--) {
                if (s[i - 1] == ']')
                        break;
                if (s[i - 1] == ':') {
                        colon = s + i - 1;
                        break;
                }
        }
        if (!colon)
                return host_valid(s, len);
        if (!host_valid(s, (size_t)(colon - s)))
                return false;
        return ck_parse_u64(colon + 1, len - (size_t)(colon - s) - 1, 65535, &port) == 0 && port > 0 &&
               len - (size_t)(colon - s) - 1 <= 5;
}

static bool tag_valid(const char *s, size_t len)
{
        if (len == 0 || len > TAG_MAX || !is_word(s[0]))
                return false;
        for (size_t i = 1; i < len; i++)
                if (!is_word(s[i]) && s[i] != '.' && s[i] != '-')
                        return false;
        return true;
}

static bool is_hex64_lower(const char *s, size_t len)
{
        if (len != 64)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

/* Docker decides whether the first component is a registry host. */
static bool first_component_is_domain(const char *s, size_t len)
{
        if (memchr(s, '.', len) || memchr(s, ':', len))
                return true;
        if (len == strlen("localhost") && memcmp(s, "localhost", len) == 0)
                return true;
        for (size_t i = 0; i < len; i++)
                if (s[i] >= 'A' && s[i] <= 'Z')
                        return true;
        return false;
}

int image_ref_parse(const char *s, struct image_ref *ret, struct ck_error **reterr)
{
        _cleanup_free_ char *domain = NULL, *path = NULL, *tag = NULL, *digest = NULL;
        size_t len, name_len, domain_len = 0, rest_off = 0;
        const char *at, *name = s, *slash, *colon;

        assert(ret);
        if (!s || !*s)
                return ck_error_set(reterr, -EINVAL, "invalid reference format: empty reference");
        len = strnlen(s, IMAGE_REF_MAX + 1);
        if (len > IMAGE_REF_MAX)
                return ck_error_set(reterr, -EINVAL, "invalid reference format: longer than %u characters",
                                    IMAGE_REF_MAX);
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
                        return ck_error_set(reterr, -EINVAL,
                                            "invalid reference format: contains a space or a control or "
                                            "non-ASCII character");
        if (is_hex64_lower(s, len))
                return ck_error_set(reterr, -EINVAL,
                                    "invalid repository name: cannot be a 64-character hexadecimal string "
                                    "(use an image ID or a name)");

        /* Digest: everything after the first '@'. */
        at = memchr(s, '@', len);
        if (at) {
                size_t dlen = len - (size_t)(at - s) - 1;

                if (dlen == 0)
                        return ck_error_set(reterr, -EINVAL,
                                            "invalid reference format: empty digest after '@'");
                digest = strndup(at + 1, dlen);
                if (!digest)
                        return -ENOMEM;
                if (!image_digest_valid(digest))
                        return ck_error_set(
                                reterr, -EINVAL,
                                "invalid reference format: digest must be sha256:<64 lowercase hex> "
                                "or sha512:<128 lowercase hex>");
                name_len = (size_t)(at - s);
        } else {
                name_len = len;
        }

        /* Tag: after the last ':' that follows the last '/'. */
        slash = memrchr(name, '/', name_len);
        colon = memrchr(slash ? slash + 1 : name, ':', name_len - (slash ? (size_t)(slash + 1 - name) : 0));
        if (colon) {
                size_t tlen = name_len - (size_t)(colon - name) - 1;

                if (tlen == 0)
                        return ck_error_set(reterr, -EINVAL,
                                            "invalid reference format: empty tag after ':'");
                if (!tag_valid(colon + 1, tlen))
                        return ck_error_set(reterr, -EINVAL,
                                            "invalid reference format: tag must be 1-128 characters of "
                                            "[A-Za-z0-9_.-] not starting with '.' or '-'");
                if (!digest) {
                        tag = strndup(colon + 1, tlen);
                        if (!tag)
                                return -ENOMEM;
                }
                name_len = (size_t)(colon - name);
        }
        if (name_len == 0)
                return ck_error_set(reterr, -EINVAL, "invalid reference format: empty repository name");

        /* Domain. */
        slash = memchr(name, '/', name_len);
        if (slash && first_component_is_domain(name, (size_t)(slash - name))) {
                domain_len = (size_t)(slash - name);
                rest_off = domain_len + 1;
                if (!domain_valid(name, domain_len))
                        return ck_error_set(
                                reterr, -EINVAL,
                                "invalid reference format: \"%.*s\" is not a valid registry host[:port]",
                                (int)domain_len, name);
                if (domain_len == strlen(LEGACY_DEFAULT_DOMAIN) &&
                    memcmp(name, LEGACY_DEFAULT_DOMAIN, domain_len) == 0)
                        domain = strdup(DEFAULT_DOMAIN);
                else
                        domain = strndup(name, domain_len);
        } else {
                domain = strdup(DEFAULT_DOMAIN);
        }
        if (!domain)
                return -ENOMEM;

        /* Path. */
        {
                const char *p = name + rest_off;
                size_t plen = name_len - rest_off, start = 0;
                bool official = strcmp(domain, DEFAULT_DOMAIN) == 0 && !memchr(p, '/', plen);

                if (plen == 0)
                        return ck_error_set(reterr, -EINVAL,
                                            "invalid reference format: empty repository path");
                for (size_t i = 0; i < plen; i++)
                        if (p[i] >= 'A' && p[i] <= 'Z')
                                return ck_error_set(
                                        reterr, -EINVAL,
                                        "invalid reference format: repository name must be lowercase");
                for (size_t i = 0; i <= plen; i++) {
                        if (i == plen || p[i] == '/') {
                                if (!path_component_valid(p + start, i - start))
                                        return ck_error_set(
                                                reterr, -EINVAL,
                                                "invalid reference format: path component \"%.*s\" must be "
                                                "lowercase letters and digits separated by '.', '_', '__' "
                                                "or '-'",
                                                (int)(i - start), p + start);
                                start = i + 1;
                        }
                }
                if (asprintf(&path, "%s%.*s", official ? OFFICIAL_REPO_PREFIX : "", (int)plen, p) < 0) {
                        path = NULL;
                        return -ENOMEM;
                }
        }
        if (strlen(domain) + 1 + strlen(path) > NAME_TOTAL_MAX)
                return ck_error_set(
                        reterr, -EINVAL,
                        "invalid reference format: repository name must not be more than %d characters",
                        NAME_TOTAL_MAX);

        if (!tag && !digest) {
                tag = strdup(DEFAULT_TAG);
                if (!tag)
                        return -ENOMEM;
        }

        *ret = (struct image_ref){
                .domain = TAKE_PTR(domain),
                .path = TAKE_PTR(path),
                .tag = TAKE_PTR(tag),
                .digest = TAKE_PTR(digest),
        };
        return 0;
}

char *image_ref_to_string(const struct image_ref *r)
{
        char *s = NULL;

        if (!r || !r->domain || !r->path)
                return NULL;
        if (asprintf(&s, "%s/%s%s%s", r->domain, r->path, r->digest ? "@" : ":",
                     r->digest ? r->digest : (r->tag ? r->tag : DEFAULT_TAG)) < 0)
                return NULL;
        return s;
}

const char *image_ref_reference(const struct image_ref *r)
{
        return r->digest ? r->digest : (r->tag ? r->tag : DEFAULT_TAG);
}

void image_ref_clear(struct image_ref *r)
{
        if (!r)
                return;
        free(r->domain);
        free(r->path);
        free(r->tag);
        free(r->digest);
        *r = (struct image_ref){0};
}
