// cchecksum: CRC-32 (IEEE 802.3, zip's), slicing-by-8, for verifying zip entries of checkpoints.
#pragma once
#include <stddef.h>
#include <stdint.h>

/// Continue `crc` (start with 0) over `n` bytes at `p`.
uint32_t turing_crc32(uint32_t crc, const void *p, size_t n);
