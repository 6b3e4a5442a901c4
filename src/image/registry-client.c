/* Registry client construction and teardown (registry.h): checks the options, builds the base
 * URL and the Basic credentials, takes the registry's connections (and the auth scheme an
 * earlier client learned) from the keep, and at the end hands them back to it, or frees them
 * when the registry never answered this client. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curl.h"
#include "registry-internal.h"

#define DEFAULT_CONNECT_MS 10000
#define DEFAULT_RETRIES    4

int registry_client_new(const struct registry_opts *o, struct registry_client **ret,
                        struct ck_error **reterr)
{
        struct registry_client *c;
        const char *host;
        int r;

        if (!o || !o->domain || !*o->domain)
                return ck_error_set(reterr, -EINVAL, "registry client: no registry domain");
        for (const char *p = o->domain; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      strchr(".-:[]", *p)))
                        return ck_error_set(reterr, -EINVAL,
                                            "registry client: invalid registry host \"%.100s\"", o->domain);
        if (!!o->username != !!o->password)
                return ck_error_set(reterr, -EINVAL,
                                    "registry client: a user name needs a password and vice versa");
        r = ck_curl_global_init();
        if (r < 0)
                return ck_error_set(reterr, r, "cannot initialise libcurl");

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        c->plain_http = o->plain_http;
        c->connect_timeout_ms = o->connect_timeout_ms ? (long)o->connect_timeout_ms : DEFAULT_CONNECT_MS;
        c->retries = o->retries ? o->retries : DEFAULT_RETRIES;
        c->cancel = o->cancel;
        c->cancel_also = o->cancel_also;
        /* Docker Hub's API lives on registry-1.docker.io. */
        host = strcmp(o->domain, "docker.io") == 0 ? "registry-1.docker.io" : o->domain;
        c->domain = strdup(o->domain);
        if (asprintf(&c->base_url, "%s://%s", c->plain_http ? "http" : "https", host) < 0)
                c->base_url = NULL;
        if (!c->domain || !c->base_url)
                goto oom;
        if (o->ca_file) {
                c->ca_file = strdup(o->ca_file);
                if (!c->ca_file)
                        goto oom;
        }
        if (o->username) {
                c->username = strdup(o->username);
                if (!c->username)
                        goto oom;
                r = registry_basic_credentials(o->username, o->password, &c->basic, reterr);
                if (r < 0) {
                        registry_client_free(c);
                        return r;
                }
        }
        if (registry_token_cache_new(&c->tokens) < 0)
                goto oom;
        if (registry_conns_take(o->keep, c->base_url, c->ca_file, &c->conns) < 0)
                goto oom;
        c->keep = o->keep;
        if (c->conns->learned) {
                /* What this registry answered an earlier client: try it without asking again
                 * (registry_get_manifest() asks again when the registry refuses). */
                c->challenge = c->conns->challenge;
                c->conns->challenge = (struct registry_challenge){0};
                c->conns->learned = false;
                c->pinged = c->inherited = true;
        }
        *ret = c;
        return 0;
oom:
        registry_client_free(c);
        return ck_error_set(reterr, -ENOMEM, "out of memory");
}

void registry_client_free(struct registry_client *c)
{
        if (!c)
                return;
        if (c->conns && c->answered && c->pinged && !c->inherited) {
                /* The registry answered us under this scheme: the next client may start from it.
                 * After a failure nothing is kept: the next client asks the registry again. */
                c->conns->challenge = c->challenge;
                c->challenge = (struct registry_challenge){0};
                c->conns->learned = true;
                registry_conns_give(c->keep, c->conns);
        } else {
                registry_conns_free(c->conns);
        }
        registry_token_cache_free(c->tokens);
        registry_challenge_clear(&c->challenge);
        ck_secret_free(c->basic);
        free(c->username);
        free(c->ca_file);
        free(c->base_url);
        free(c->domain);
        pthread_mutex_destroy(&c->lock);
        free(c);
}
