/* libcurl glue: cleanup functions and process-wide initialisation. */
#pragma once

#include <curl/curl.h>

#include "cleanup.h"

DEFINE_POINTER_CLEANUP(CURL, curl_easy_cleanup, curl_easy_cleanup)
DEFINE_POINTER_CLEANUP(struct curl_slist, curl_slist_free_all, curl_slist_free_all)

/* curl_global_init() once per process, thread-safe; returns 0 or -EIO. */
int ck_curl_global_init(void);
