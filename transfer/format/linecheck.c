/*
 * Ferry's native line checker: proves record lines of the bulk streams good, in one pass.
 *
 * ferry_check() walks a buffer of record lines joined by "\n" and counts how many lines,
 * from a given offset on, are proven good: each must be exactly the compact, sorted-key
 * form Ferry's writers produce for a `request` or `result` record (transfer.format.spec.canonical),
 * with every value valid for shared.records.validate_record and every byte valid strict
 * JSON (transfer.format.strictjson: UTF-8, no duplicate keys, no lone surrogates, 64-bit integers,
 * finite numbers, nesting within the limit). It stops at the first line it cannot prove
 * and says where that line starts; it never says why. The caller (transfer.format.native) sends
 * that line through the Python checks, which either accept it or name the problem.
 *
 * So this file may refuse more than the Python checks, never less: wherever a rule is
 * fiddly (escaped keys, big numbers, objects with many keys, timestamps with an offset)
 * it refuses, and the Python path decides. tests/transfer/format/test_native.py holds the two to
 * that, on valid and hostile lines alike.
 *
 * Plain C99, no Python API: loaded with ctypes. Built by `make install`.
 */
#include <stddef.h>
#include <string.h>

enum { SHAPE_REQUEST = 1, SHAPE_RESULT = 2 };
enum { MAX_KEYS = 64 };       /* objects with more keys go to the Python path */
enum { MAX_INT_DIGITS = 18 }; /* any such integer fits in 64 bits */
enum { MAX_NESTING = 128 };   /* deeper lines go to the Python path, whatever the limit */

typedef struct {
    const unsigned char *p;   /* next byte */
    const unsigned char *end; /* end of the line (its "\n" or the buffer's end) */
    int max_depth;
} Cursor;

static int lit(Cursor *c, const char *text) {
    size_t n = strlen(text);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, text, n) != 0) return 0;
    c->p += n;
    return 1;
}

static int hex4(const unsigned char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = s[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= ch - '0';
        else if (ch >= 'a' && ch <= 'f') v |= ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F') v |= ch - 'A' + 10;
        else return 0;
    }
    *out = v;
    return 1;
}

/* One UTF-8 sequence of two or more bytes starting at c->p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
static int utf8_sequence(Cursor *c) {
    const unsigned char *s = c->p;
    size_t left = (size_t)(c->end - s);
    unsigned char b0 = s[0];
    int need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b0 >= 0xC2 && b0 <= 0xDF) need = 1;
    else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else return 0;
    if (left < (size_t)need + 1) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i <= need; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    c->p += need + 1;
    return 1;
}

/* A JSON string (c->p at its opening quote). Counts its characters into *chars (code
 * points; an escape counts as one, a surrogate pair as one) and, if escapes is 0, refuses
 * any backslash. */
static int string(Cursor *c, int escapes, size_t *chars) {
    size_t n = 0;
    if (c->p >= c->end || *c->p != '"') return 0;
    c->p++;
    for (;;) {
        if (c->p >= c->end) return 0;
        unsigned char ch = *c->p;
        if (ch == '"') {
            c->p++;
            if (chars) *chars = n;
            return 1;
        }
        n++;
        if (ch < 0x20) return 0;
        if (ch < 0x80) {
            if (ch != '\\') {
                c->p++;
                continue;
            }
            if (!escapes || c->end - c->p < 2) return 0;
            unsigned char e = c->p[1];
            if (e == 'u') {
                unsigned u, low;
                if (c->end - c->p < 6 || !hex4(c->p + 2, &u)) return 0;
                c->p += 6;
                if (u >= 0xDC00 && u <= 0xDFFF) return 0; /* lone low surrogate */
                if (u >= 0xD800 && u <= 0xDBFF) {         /* must pair with a low one */
                    if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u') return 0;
                    if (!hex4(c->p + 2, &low) || low < 0xDC00 || low > 0xDFFF) return 0;
                    c->p += 6;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == '\0') return 0;
            c->p += 2;
            continue;
        }
        if (!utf8_sequence(c)) return 0;
    }
}

static int is_digit(const unsigned char *p, const unsigned char *end) {
    return p < end && *p >= '0' && *p <= '9';
}

/* A JSON number. Integers of up to MAX_INT_DIGITS digits; other numbers only where their
 * size is plainly finite (integer digits plus exponent at most 300). */
static int number(Cursor *c) {
    const unsigned char *p = c->p, *end = c->end;
    if (p < end && *p == '-') p++;
    if (!is_digit(p, end)) return 0;
    const unsigned char *digits = p;
    if (*p == '0') p++;
    else
        while (is_digit(p, end)) p++;
    long int_digits = (long)(p - digits);
    int is_int = 1;
    if (p < end && *p == '.') {
        p++;
        if (!is_digit(p, end)) return 0;
        while (is_digit(p, end)) p++;
        is_int = 0;
    }
    long exponent = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int negative = 0;
        if (p < end && (*p == '+' || *p == '-')) negative = *p++ == '-';
        if (!is_digit(p, end)) return 0;
        const unsigned char *first = p;
        while (is_digit(p, end)) {
            exponent = exponent * 10 + (*p - '0');
            p++;
            if (p - first > 4) return 0;
        }
        if (negative) exponent = -exponent;
        is_int = 0;
    }
    if (is_int ? int_digits > MAX_INT_DIGITS : int_digits + exponent > 300) return 0;
    c->p = p;
    return 1;
}

static int value(Cursor *c, int depth);

/* A JSON object whose own nesting depth is `depth` (the line's outer object is 1). */
static int object(Cursor *c, int depth) {
    const unsigned char *keys[MAX_KEYS];
    size_t lengths[MAX_KEYS];
    int count = 0;
    if (depth > c->max_depth || depth > MAX_NESTING || c->p >= c->end || *c->p != '{')
        return 0;
    c->p++;
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 1;
    }
    for (;;) {
        const unsigned char *key = c->p + 1;
        if (count == MAX_KEYS || !string(c, 0, NULL)) return 0;
        size_t length = (size_t)(c->p - 1 - key);
        for (int i = 0; i < count; i++)
            if (lengths[i] == length && memcmp(keys[i], key, length) == 0) return 0;
        keys[count] = key;
        lengths[count] = length;
        count++;
        if (!lit(c, ":") || !value(c, depth)) return 0;
        if (c->p >= c->end) return 0;
        if (*c->p == '}') {
            c->p++;
            return 1;
        }
        if (*c->p != ',') return 0;
        c->p++;
    }
}

/* A JSON array at nesting depth `depth`; with objects_only, every item must be an object. */
static int array(Cursor *c, int depth, int objects_only) {
    if (depth > c->max_depth || depth > MAX_NESTING || c->p >= c->end || *c->p != '[')
        return 0;
    c->p++;
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return 1;
    }
    for (;;) {
        if (objects_only ? !object(c, depth + 1) : !value(c, depth)) return 0;
        if (c->p >= c->end) return 0;
        if (*c->p == ']') {
            c->p++;
            return 1;
        }
        if (*c->p != ',') return 0;
        c->p++;
    }
}

/* Any JSON value inside a container of depth `depth`. */
static int value(Cursor *c, int depth) {
    if (c->p >= c->end) return 0;
    switch (*c->p) {
    case '{': return object(c, depth + 1);
    case '[': return array(c, depth + 1, 0);
    case '"': return string(c, 1, NULL);
    case 't': return lit(c, "true");
    case 'f': return lit(c, "false");
    case 'n': return lit(c, "null");
    default: return number(c);
    }
}

/* A non-negative integer (no sign, no leading zero) of at most MAX_INT_DIGITS digits;
 * at least 1 if positive is set. */
static int natural(Cursor *c, int positive) {
    const unsigned char *p = c->p;
    if (!is_digit(p, c->end)) return 0;
    if (*p == '0') {
        if (positive) return 0;
        p++;
    } else
        while (is_digit(p, c->end)) p++;
    if (p - c->p > MAX_INT_DIGITS || is_digit(p, c->end)) return 0;
    c->p = p;
    return 1;
}

/* A string of 1..64 characters from [a-z0-9_-] (shared.records.ProfileTypeName). */
static int profile_name(Cursor *c) {
    const unsigned char *p = c->p;
    if (p >= c->end || *p++ != '"') return 0;
    const unsigned char *first = p;
    while (p < c->end && ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                          *p == '-'))
        p++;
    if (p == first || p - first > 64 || p >= c->end || *p != '"') return 0;
    c->p = p + 1;
    return 1;
}

/* A lower-case hyphenated UUID in quotes (shared.records' canonical request id). */
static int uuid(Cursor *c) {
    const unsigned char *p = c->p;
    if (c->end - p < 38 || p[0] != '"' || p[37] != '"') return 0;
    for (int i = 1; i <= 36; i++) {
        unsigned char ch = p[i];
        if (i == 9 || i == 14 || i == 19 || i == 24) {
            if (ch != '-') return 0;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return 0;
    }
    c->p += 38;
    return 1;
}

static int digits_value(const unsigned char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

/* "YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z", a real date and time of day (as transfer.protocol.bulk.wire_time
 * writes them; every one is an aware datetime to pydantic). */
static int timestamp(Cursor *c) {
    static const int days_in[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const unsigned char *p = c->p;
    int year, month, day, hour, minute, second;
    if (c->end - p < 22 || p[0] != '"') return 0;
    p++;
    if (!digits_value(p, 4, &year) || p[4] != '-' || !digits_value(p + 5, 2, &month) ||
        p[7] != '-' || !digits_value(p + 8, 2, &day) || p[10] != 'T' ||
        !digits_value(p + 11, 2, &hour) || p[13] != ':' || !digits_value(p + 14, 2, &minute) ||
        p[16] != ':' || !digits_value(p + 17, 2, &second))
        return 0;
    if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 ||
        second > 59)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > days_in[month - 1] + (month == 2 && leap)) return 0;
    p += 19;
    if (p < c->end && *p == '.') {
        const unsigned char *first = ++p;
        while (is_digit(p, c->end)) p++;
        if (p == first || p - first > 6) return 0;
    }
    if (c->end - p < 2 || p[0] != 'Z' || p[1] != '"') return 0;
    c->p = p + 2;
    return 1;
}

/* `null` or what `check` accepts. */
#define OR_NULL(c, check) (lit((c), "null") || (check))

/* `"correlation_id":"…",` at the start of the data, if there (shared.records.CorrelationId:
 * 1..128 of [A-Za-z0-9._:-]). */
static int maybe_correlation_id(Cursor *c) {
    if (!lit(c, "\"correlation_id\":\"")) return 1;
    const unsigned char *p = c->p, *first = c->p;
    while (p < c->end && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                          (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == ':' ||
                          *p == '-'))
        p++;
    if (p == first || p - first > 128 || p >= c->end || *p != '"') return 0;
    c->p = p + 1;
    return lit(c, ",");
}

static int lower_hex(const unsigned char *p, int n) {
    for (int i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return 0;
    return 1;
}

/* `,"traceparent":"00-<32 hex>-<16 hex>-<2 hex>"`, if there (shared.records.Traceparent). */
static int maybe_traceparent(Cursor *c) {
    if (!lit(c, ",\"traceparent\":\"00-")) return 1;
    const unsigned char *p = c->p;
    if (c->end - p < 53 || !lower_hex(p, 32) || p[32] != '-' || !lower_hex(p + 33, 16) ||
        p[49] != '-' || !lower_hex(p + 50, 2) || p[52] != '"')
        return 0;
    c->p = p + 53;
    return 1;
}

static int request_line(Cursor *c) {
    size_t chars;
    return lit(c, "{\"data\":{") && maybe_correlation_id(c) && lit(c, "\"profile_type\":") &&
           profile_name(c) && lit(c, ",\"query\":") && object(c, 3) &&
           lit(c, ",\"submitted_at\":") && timestamp(c) && maybe_traceparent(c) &&
           lit(c, ",\"user_id\":") && string(c, 1, &chars) && chars >= 1 &&
           chars <= 64 && lit(c, "},\"id\":") && uuid(c) &&
           lit(c, ",\"kind\":\"record\",\"type\":\"request\",\"version\":") && natural(c, 0) &&
           lit(c, "}");
}

static int result_line(Cursor *c) {
    return lit(c, "{\"data\":{") && maybe_correlation_id(c) && lit(c, "\"error\":") &&
           OR_NULL(c, string(c, 1, NULL)) && lit(c, ",\"executed_at\":") && timestamp(c) &&
           lit(c, ",\"hits\":") && array(c, 3, 1) && lit(c, ",\"part\":0,\"parts\":") &&
           natural(c, 1) && lit(c, ",\"status\":") &&
           (lit(c, "\"DONE\"") || lit(c, "\"FAILED\"")) && lit(c, ",\"took_ms\":") &&
           OR_NULL(c, natural(c, 0)) && lit(c, ",\"total\":") && OR_NULL(c, natural(c, 0)) &&
           maybe_traceparent(c) && lit(c, "},\"id\":") && uuid(c) &&
           lit(c, ",\"kind\":\"record\",\"type\":\"result\",\"version\":") && natural(c, 0) &&
           lit(c, "}");
}

/*
 * Lines of `buf` (length `len`, lines joined by "\n", no newline after the last) from
 * offset `start` on: how many of them, at most `max_lines`, are proven good records of
 * `shape` (SHAPE_REQUEST or SHAPE_RESULT) nested at most `max_depth` deep. `*next` is set to
 * the offset where the first line not counted starts.
 */
size_t ferry_check(const char *buf, size_t len, size_t start, size_t max_lines, int shape,
                   int max_depth, size_t *next) {
    const unsigned char *base = (const unsigned char *)buf;
    size_t good = 0;
    while (good < max_lines && start <= len) {
        const unsigned char *line = base + start;
        const unsigned char *newline = memchr(line, '\n', len - start);
        Cursor c = {line, newline ? newline : base + len, max_depth};
        int ok = shape == SHAPE_REQUEST ? request_line(&c) : shape == SHAPE_RESULT && result_line(&c);
        if (!ok || c.p != c.end) break;
        good++;
        start = (size_t)(c.end - base) + 1;
    }
    *next = start;
    return good;
}
