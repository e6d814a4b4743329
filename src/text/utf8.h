/* utf8.h: the small UTF-8 toolkit the tokenizers share.
 *
 * Decoding is strict (no overlong forms, no surrogates, nothing above
 * U+10FFFF): a byte that does not begin a valid sequence is reported as a
 * one-byte "character" so callers can pass it through unchanged instead of
 * failing or guessing. */
#ifndef CITADEL_TEXT_UTF8_H
#define CITADEL_TEXT_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the character starting at s[0] (n > 0 bytes available): 1..4 for
 * a valid sequence, with *cp its code point; 1 with *valid = false when s[0]
 * does not start a complete valid sequence. cp and valid may be NULL. */
size_t cit_utf8_next(const uint8_t *s, size_t n, uint32_t *cp, bool *valid);

/* Writes cp (<= U+10FFFF, not a surrogate) to out[0..4); returns its length. */
size_t cit_utf8_encode(uint32_t cp, uint8_t out[4]);

/* How many bytes at the end of s[0..n) are the start of a valid multi-byte
 * character that is still missing bytes (0..3). Bytes that can never become
 * valid are not counted. */
size_t cit_utf8_incomplete_tail(const uint8_t *s, size_t n);

#endif
