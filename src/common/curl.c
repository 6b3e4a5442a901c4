/* libcurl glue. */
#include <errno.h>
#include <pthread.h>

#include "curl.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
        curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int ck_curl_global_init(void)
{
        pthread_once(&curl_once, curl_init_once);
        return curl_init_result == CURLE_OK ? 0 : -EIO;
}
