/* libcurl glue. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "curl.h"
#include "secret.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
        /* libcurl copies what we hand it (the Authorization header with a registry password, a
         * Bearer token or the API token) into its own header lists and buffers: wipe them all on
         * free. realloc copies rather than growing in place so no stale copy survives. */
        curl_init_result = curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, ck_free_wiped, ck_realloc_wiped,
                                                strdup, calloc);
}

int ck_curl_global_init(void)
{
        pthread_once(&curl_once, curl_init_once);
        return curl_init_result == CURLE_OK ? 0 : -EIO;
}
