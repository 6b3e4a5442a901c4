/* The compiled seccomp filter, kept per profile for crun.
 *
 * crun compiles the spec's seccomp profile with libseccomp on every start (about half of its CPU
 * time here); it also accepts an already compiled filter in the `run.oci.seccomp_bpf_data`
 * annotation (base64 of the `struct sock_filter` array), which then replaces the compile. The
 * filter crun wrote for a container (<runtime root>/<id>/seccomp.bpf) is kept under
 * <dir>/<key>.bpf, key = SHA-256 of the profile (canonical JSON) and of crun's `--version` output,
 * and given to the later starts with the same key: the bytes crun itself compiled from the same
 * profile, so the filter in force is the same. <dir> is under the run dir (root, 0700, tmpfs). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "error.h"

#define SECCOMP_CACHE_ANNOTATION "run.oci.seccomp_bpf_data"

/* key: 64 hex digits + NUL. -ENOENT when the spec has no linux.seccomp. */
int seccomp_cache_key(const json_t *cfg, const char *runtime_version, char key[65]);

/* Adds the annotation to cfg when <dir>/<key>.bpf exists and is a well-formed filter. Returns
 * 1 when added, 0 when there is nothing usable (the runtime compiles the profile itself). */
int seccomp_cache_annotate(const char *dir, const char *key, json_t *cfg, struct ck_error **reterr);

/* Keeps the filter the runtime compiled for container id (<runtime_root>/<id>/seccomp.bpf). */
int seccomp_cache_store(const char *dir, const char *key, const char *runtime_root, const char *id,
                        struct ck_error **reterr);

/* A filter is a non-empty array of 8-byte instructions, at most BPF_MAXINSNS (4096) of them. */
bool seccomp_cache_filter_valid(size_t len);
