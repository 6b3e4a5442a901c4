/* Fuzzes the rtnetlink reply parser: what the kernel answers to conkerd's link, address and route
 * requests (the first 4 bytes choose the sequence number looked for). */
#include <stdint.h>
#include <string.h>

#include "netlink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint32_t seq = 0;
        int error = 0, ifindex = 0;

        if (size >= 4) {
                memcpy(&seq, data, 4);
                data += 4;
                size -= 4;
        }
        if (nl_reply_parse(data, size, seq, &error, &ifindex) == 1 && (error > 0 || error < -4095))
                __builtin_trap();
        return 0;
}
