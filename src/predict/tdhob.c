/* The TD HOB: the hand-off block list QEMU writes into the TD_HOB section for TDVF
 * (hw/i386/tdvf-hob.c), which OVMF measures into RTMR0 as the "TdxTable" handoff table.
 *
 * Layout: a 56-byte PHIT HOB {type 1, length 0x38, reserved, version 9, boot mode 0, four zero
 * u64 memory bounds, EfiEndOfHobList}, then one 48-byte resource descriptor HOB per RAM range
 * {type 3, length 0x30, reserved, zero owner GUID, resource type, attributes 7 (present,
 * initialized, tested), start, length}, then an end HOB that OVMF does not measure.
 *
 * The RAM ranges are q35's: all RAM below 4 GiB when it is smaller than 0xB0000000, otherwise
 * 2 GiB low and the rest from 4 GiB. Ranges the VMM accepted while building the TD (the TD_HOB
 * and TEMP_MEM sections) are system memory; the rest is unaccepted memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "predict.h"

#define HOB_PHIT_LEN      0x38u
#define HOB_RESOURCE_LEN  0x30u
#define HOB_END_LEN       0x8u
#define RES_SYSTEM_MEMORY 0u
#define RES_UNACCEPTED    7u
#define RES_ATTRS         7u
#define Q35_LOWMEM_SPLIT  0xb0000000ull
#define Q35_LOWMEM        0x80000000ull
#define GIB4              0x100000000ull
#define MAX_RANGES        (2 + 2 * PREDICT_TDVF_MAX_SECTIONS)

struct ram_range {
        uint64_t start, len;
        uint32_t type;
};

static void put_le64(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

/* Marks [start, start+len) accepted, splitting the unaccepted range that contains it. */
static int accept_range(struct ram_range *r, size_t *n, uint64_t start, uint64_t len)
{
        for (size_t i = 0; i < *n; i++) {
                uint64_t s = r[i].start, e = r[i].start + r[i].len;
                size_t add = 0;

                if (start < s || start + len > e)
                        continue;
                if (r[i].type != RES_UNACCEPTED)
                        return -EINVAL; /* two sections overlap */
                add = (start > s) + (start + len < e);
                if (*n + add > MAX_RANGES)
                        return -E2BIG;
                /* Replace r[i] by up to three ranges; order is restored by sorting later. */
                r[i] = (struct ram_range){start, len, RES_SYSTEM_MEMORY};
                if (start > s)
                        r[(*n)++] = (struct ram_range){s, start - s, RES_UNACCEPTED};
                if (start + len < e)
                        r[(*n)++] = (struct ram_range){start + len, e - start - len, RES_UNACCEPTED};
                return 0;
        }
        return -ERANGE;
}

static int range_cmp(const void *a, const void *b)
{
        const struct ram_range *x = a, *y = b;

        return x->start < y->start ? -1 : x->start > y->start;
}

int predict_tdhob_build(const struct predict_tdvf *t, uint64_t mem_size, uint8_t **ret, size_t *ret_len,
                        struct ck_error **reterr)
{
        struct ram_range r[MAX_RANGES];
        uint64_t low, hob_gpa = 0;
        size_t n = 0, len;
        bool have_hob = false;
        uint8_t *b, *p;

        if (mem_size < 0x1000000 || mem_size > (1ull << 46) || mem_size % 0x1000)
                return ck_error_set(reterr, -EINVAL,
                                    "memory size 0x%llx: need 16 MiB..64 TiB in whole pages",
                                    (unsigned long long)mem_size);
        low = mem_size >= Q35_LOWMEM_SPLIT ? Q35_LOWMEM : mem_size;
        r[n++] = (struct ram_range){0, low, RES_UNACCEPTED};
        if (mem_size > low)
                r[n++] = (struct ram_range){GIB4, mem_size - low, RES_UNACCEPTED};

        for (size_t i = 0; i < t->n; i++) {
                const struct predict_tdvf_section *s = &t->s[i];
                int k;

                if (s->type != PREDICT_TDVF_TD_HOB && s->type != PREDICT_TDVF_TEMP_MEM)
                        continue;
                if (s->type == PREDICT_TDVF_TD_HOB) {
                        if (have_hob)
                                return ck_error_set(reterr, -EBADMSG, "firmware: two TD_HOB sections");
                        have_hob = true;
                        hob_gpa = s->gpa;
                }
                k = accept_range(r, &n, s->gpa, s->mem_size);
                if (k < 0)
                        return ck_error_set(
                                reterr, -EBADMSG,
                                "TDVF section at 0x%llx+0x%llx is not inside unaccepted RAM of %llu MiB",
                                (unsigned long long)s->gpa, (unsigned long long)s->mem_size,
                                (unsigned long long)(mem_size >> 20));
        }
        if (!have_hob)
                return ck_error_set(reterr, -EBADMSG, "firmware: no TD_HOB section");
        qsort(r, n, sizeof(r[0]), range_cmp);

        len = HOB_PHIT_LEN + n * HOB_RESOURCE_LEN;
        b = calloc(1, len);
        if (!b)
                return -ENOMEM;
        ck_put_le16(b, 1);
        ck_put_le16(b + 2, HOB_PHIT_LEN);
        ck_put_le32(b + 8, 9);                         /* EFI_HOB_HANDOFF_TABLE_VERSION */
        put_le64(b + 48, hob_gpa + len + HOB_END_LEN); /* EfiEndOfHobList */
        p = b + HOB_PHIT_LEN;
        for (size_t i = 0; i < n; i++, p += HOB_RESOURCE_LEN) {
                ck_put_le16(p, 3);
                ck_put_le16(p + 2, HOB_RESOURCE_LEN);
                ck_put_le32(p + 24, r[i].type);
                ck_put_le32(p + 28, RES_ATTRS);
                put_le64(p + 32, r[i].start);
                put_le64(p + 40, r[i].len);
        }
        *ret = b;
        *ret_len = len;
        return 0;
}
