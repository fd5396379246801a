/*
 * The C harness of cms.h: what a billing system written in C does with the library, and what it must
 * survive. Sections:
 *   1. hostile calls: NULLs, invalid UTF-8 (arguments and pages), bad JSON, unknown methods, double frees,
 *      freed handles, out-parameters left alone on failure, the last error's code and message; a panic
 *      caught inside a call (debug builds of the library);
 *   2. a full month on a SQLite file: onboard a channel, ingest the sample Usage API page
 *      (tests/data/azure-stack-hub-sample-usage.json), reopen, preview and issue invoices, read the
 *      commission statements (figures checked by hand in tests/vectors/calls/make_calls.py);
 *   3. the conformance vectors: the case files of tests/vectors through `evaluate_vector`, the call files of tests/vectors/calls
 *      step by step through cms_session_call, results matched as the Rust runner matches them;
 *   4. the month-end on a generated workload (when given), outputs compared byte for byte with DuckDB's.
 *
 * usage: test_cms REPO_ROOT [WORKLOAD_DIR EXPECTED_OUTPUTS_DIR]
 * Prints "c: N passed, M failed" (the closing line scripts/test.sh counts in its tally); exits 1 if anything
 * failed.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include <dirent.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cms.h"

#define JSON_IMPLEMENTATION
#include "json.h"

static int passed = 0, failed = 0;
static const char *root = ".";

static void check(int ok, const char *format, ...) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    va_list args;
    va_start(args, format);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, format, args);
    fprintf(stderr, "\n");
    va_end(args);
}

/* ---------------------------------------------------------------- small helpers */

/* A malloc'ed copy of a file's bytes (NUL-terminated; `length` without the NUL), or NULL. */
static char *read_file(const char *path, size_t *length) {
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    size_t capacity = 1 << 16, used = 0, count;
    char *buffer = malloc(capacity);
    while (buffer && (count = fread(buffer + used, 1, capacity - used - 1, file)) > 0) {
        used += count;
        if (capacity - used - 1 == 0) {
            char *grown = realloc(buffer, capacity * 2);
            if (!grown) { free(buffer); buffer = NULL; break; }
            buffer = grown;
            capacity *= 2;
        }
    }
    fclose(file);
    if (buffer) buffer[used] = '\0';
    if (length) *length = used;
    return buffer;
}

/* A malloc'ed string of a format. */
static char *format(const char *pattern, ...) {
    va_list args;
    va_start(args, pattern);
    int size = vsnprintf(NULL, 0, pattern, args);
    va_end(args);
    char *text = malloc((size_t)size + 1);
    va_start(args, pattern);
    vsnprintf(text, (size_t)size + 1, pattern, args);
    va_end(args);
    return text;
}

/* A malloc'ed copy of `text` with every `token` replaced by `with`. */
static char *replace(const char *text, const char *token, const char *with) {
    size_t count = 0, token_length = strlen(token), with_length = strlen(with);
    for (const char *at = strstr(text, token); at; at = strstr(at + token_length, token)) count++;
    char *out = malloc(strlen(text) + count * (with_length + 1) + 1), *to = out;
    const char *from = text;
    for (const char *at = strstr(from, token); at; at = strstr(from, token)) {
        memcpy(to, from, (size_t)(at - from));
        to += at - from;
        memcpy(to, with, with_length);
        to += with_length;
        from = at + token_length;
    }
    strcpy(to, from);
    return out;
}

static int remove_entry(const char *path, const struct stat *info, int flag, struct FTW *ftw) {
    (void)info; (void)flag; (void)ftw;
    return remove(path);
}

static void remove_tree(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* A fresh scratch folder (malloc'ed path). */
static char *scratch_dir(void) {
    const char *tmp = getenv("TMPDIR");
    char *pattern = format("%s/cms-c-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(pattern)) { perror("mkdtemp"); exit(2); }
    return pattern;
}

static char *last_code(void) {
    char *code = NULL;
    if (cms_last_error_code(&code) != CMS_OK) return NULL;
    return code;
}

static char *last_message(void) {
    char *message = NULL;
    if (cms_last_error_message(&message) != CMS_OK) return NULL;
    return message;
}

/* Whether the last error's code is `code` and its message contains `fragment` (if given). */
static int last_error_is(const char *code, const char *fragment) {
    char *actual_code = last_code(), *message = last_message();
    int ok = actual_code && message && !strcmp(actual_code, code) && (!fragment || strstr(message, fragment));
    if (!ok) fprintf(stderr, "  last error: [%s] %s (expected [%s] ...%s...)\n", actual_code ? actual_code : "?",
                     message ? message : "?", code, fragment ? fragment : "");
    cms_string_free(actual_code);
    cms_string_free(message);
    return ok;
}

/* Call a method with a params text; returns the status, the result (owned, or NULL) in *result. */
static cms_status call(cms_session *session, const char *method, const char *params, char **result) {
    *result = NULL;
    return session ? cms_session_call(session, method, strlen(method), params, strlen(params), result)
                   : cms_call(method, strlen(method), params, strlen(params), result);
}

/* Call and parse: 0 with *out filled, or -1 (printing the error). */
static int call_json(cms_session *session, const char *method, const char *params, json_node *out) {
    char *result = NULL, error[200];
    cms_status status = call(session, method, params, &result);
    if (status != CMS_OK) {
        char *message = last_message();
        fprintf(stderr, "  %s failed with status %d: %s\n", method, (int)status, message ? message : "?");
        cms_string_free(message);
        return -1;
    }
    int parsed = json_parse(result, strlen(result), out, error, sizeof error);
    if (parsed) fprintf(stderr, "  %s: result is not JSON: %s\n", method, error);
    cms_string_free(result);
    return parsed;
}

/* ---------------------------------------------------------------- matching (as cms_api::vectors::matches) */

/* Whether `text` is -?digits(.digits)? */
static int plain_decimal(const char *text) {
    const char *at = text;
    if (*at == '-') at++;
    if (*at < '0' || *at > '9') return 0;
    while (*at >= '0' && *at <= '9') at++;
    if (*at == '.') {
        at++;
        if (*at < '0' || *at > '9') return 0;
        while (*at >= '0' && *at <= '9') at++;
    }
    return *at == '\0';
}

/* A plain decimal in canonical form: no leading zeros, no trailing fraction zeros, no "-0". */
static void canonical_decimal(const char *text, char *out, size_t size) {
    int negative = *text == '-';
    if (negative) text++;
    while (*text == '0' && text[1] >= '0' && text[1] <= '9') text++;
    const char *point = strchr(text, '.');
    size_t whole = point ? (size_t)(point - text) : strlen(text), fraction = 0;
    if (point) {
        fraction = strlen(point + 1);
        while (fraction > 0 && point[fraction] == '0') fraction--;
    }
    int zero = whole == 1 && text[0] == '0' && fraction == 0;
    snprintf(out, size, "%s%.*s%s%.*s", negative && !zero ? "-" : "", (int)whole, text, fraction ? "." : "",
             (int)fraction, point ? point + 1 : "");
}

static int same_string(const char *actual, const char *expected) {
    if (!strcmp(actual, expected)) return 1;
    if (plain_decimal(actual) && plain_decimal(expected)) {
        char left[128], right[128];
        canonical_decimal(actual, left, sizeof left);
        canonical_decimal(expected, right, sizeof right);
        return !strcmp(left, right);
    }
    return 0;
}

/* 1 if `actual` matches `expected`; else 0 with the path of the first difference in `why`. */
static int matches(const json_node *actual, const json_node *expected, const char *path, char *why, size_t size) {
    if (expected->type == JSON_OBJECT) {
        if (actual->type != JSON_OBJECT) { snprintf(why, size, "%s: expected an object", path); return 0; }
        for (size_t i = 0; i < expected->count; i++) {
            char inner[512];
            snprintf(inner, sizeof inner, "%s.%s", path, expected->keys[i]);
            const json_node *found = json_get(actual, expected->keys[i]);
            if (!found) {
                if (expected->children[i].type == JSON_NULL) continue;
                snprintf(why, size, "%s: missing", inner);
                return 0;
            }
            if (!matches(found, &expected->children[i], inner, why, size)) return 0;
        }
        return 1;
    }
    if (expected->type == JSON_ARRAY) {
        if (actual->type != JSON_ARRAY || actual->count != expected->count) {
            snprintf(why, size, "%s: expected an array of %zu items", path, expected->count);
            return 0;
        }
        for (size_t i = 0; i < expected->count; i++) {
            char inner[512];
            snprintf(inner, sizeof inner, "%s[%zu]", path, i);
            if (!matches(&actual->children[i], &expected->children[i], inner, why, size)) return 0;
        }
        return 1;
    }
    int ok = actual->type == expected->type;
    if (ok && (expected->type == JSON_STRING)) ok = same_string(actual->text, expected->text);
    if (ok && expected->type == JSON_NUMBER) ok = !strcmp(actual->text, expected->text);
    if (ok && expected->type == JSON_BOOL) ok = actual->boolean == expected->boolean;
    if (!ok) snprintf(why, size, "%s: expected %s", path, expected->text ? expected->text : "another value");
    return ok;
}

/* ---------------------------------------------------------------- 1. hostile calls */

static void hostile_calls(void) {
    cms_session *session = (cms_session *)(uintptr_t)0x1;
    char *sentinel = (char *)(uintptr_t)0x2, *result = sentinel;

    check(cms_session_new_memory(NULL) == CMS_NULL_ARGUMENT, "new_memory(NULL)");
    check(last_error_is("null_argument", "session"), "last error after new_memory(NULL)");
    check(cms_session_new_sqlite(NULL, 4, &session) == CMS_NULL_ARGUMENT && session == (cms_session *)(uintptr_t)0x1,
          "new_sqlite(NULL path) leaves the out-parameter alone");
    const char bad_path[] = "caf\xe9.db";
    check(cms_session_new_sqlite(bad_path, sizeof bad_path - 1, &session) == CMS_INVALID_UTF8, "new_sqlite(bad UTF-8)");
    check(last_error_is("invalid_utf8", "argument path is not UTF-8: invalid byte at offset 3"), "UTF-8 error names the byte");
    const char *nowhere = "/nonexistent-cms/x/cms.db";
    check(cms_session_new_sqlite(nowhere, strlen(nowhere), &session) == CMS_STORE, "a store that cannot open");
    check(last_error_is("store", NULL), "store error code");

    check(cms_session_new_memory(&session) == CMS_OK, "new_memory");
    check(cms_session_call(NULL, "version", 7, "", 0, &result) == CMS_NULL_ARGUMENT && result == sentinel, "call(NULL session)");
    check(cms_session_call(session, NULL, 0, "", 0, &result) == CMS_NULL_ARGUMENT && result == sentinel, "call(NULL method)");
    check(cms_session_call(session, "version", 7, NULL, 0, &result) == CMS_NULL_ARGUMENT, "call(NULL params)");
    check(cms_session_call(session, "version", 7, "", 0, NULL) == CMS_NULL_ARGUMENT, "call(NULL out)");
    check(cms_session_call(session, "nodes\xff", 6, "", 0, &result) == CMS_INVALID_UTF8 && result == sentinel, "bad UTF-8 method");
    check(cms_session_call(session, "nodes", 5, "{\"at\":\"\xc3\x28\"}", 11, &result) == CMS_INVALID_UTF8, "bad UTF-8 params");
    check(cms_session_call(session, "version", 7, "{", 1, &result) == CMS_BAD_JSON && result == sentinel, "params not JSON");
    check(last_error_is("bad_json", "params_json"), "bad JSON names params_json");
    check(cms_session_call(session, "teleport", 8, "{}", 2, &result) == CMS_INVALID_VALUE, "unknown method");
    check(last_error_is("invalid_value", "call field method: invalid value \"teleport\""), "unknown method named");
    const char *params = "{\"principal\":{\"id\":\"op\"},\"at\":\"noon\"}";
    check(cms_session_call(session, "nodes", 5, params, strlen(params), &result) == CMS_BAD_TIMESTAMP, "bad instant");
    check(last_error_is("bad_timestamp", "nodes field at"), "bad instant names method and field");
    params = "{\"principal\":{\"id\":\"op\"},\"subscription\":\"s\",\"meter\":\"FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5\","
             "\"quantity\":1.5,\"at\":\"2025-01-01T00:00:00Z\"}";
    check(cms_session_call(session, "price_chain", 11, params, strlen(params), &result) == CMS_BAD_DECIMAL, "float decimal");
    check(last_error_is("bad_decimal", "a JSON number: decimals are passed as strings"), "floats are refused");
    /* A length shorter than the text: only `length` bytes are read ("versionXYZ" as "version"). */
    check(cms_session_call(session, "versionXYZ", 7, "", 0, &result) == CMS_OK && result && strstr(result, "\"version\""),
          "pointer + length: the length bounds the method name");
    check(cms_string_free(result) == CMS_OK, "free a result");
    check(cms_string_free(result) == CMS_INVALID_HANDLE, "a second free of a string is refused");
    char foreign[] = "not from the library";
    check(cms_string_free(foreign) == CMS_INVALID_HANDLE, "a foreign string is refused");
    check(cms_string_free(NULL) == CMS_OK, "free(NULL) does nothing");

    /* A page is UTF-8 text: a Latin-1 byte is refused before the page is parsed, naming its offset. */
    result = sentinel;
    const char latin1_page[] = "{\"value\": [], \"comment\": \"caf\xe9\"}";
    check(cms_session_ingest_page(session, latin1_page, sizeof latin1_page - 1, "p.json", 6, &result) == CMS_INVALID_UTF8 &&
              result == sentinel,
          "ingest_page(a page that is not UTF-8)");
    check(last_error_is("invalid_utf8", "argument page is not UTF-8: invalid byte at offset 29"), "the page's bad byte named");
    check(cms_session_ingest_page(session, "{\"value\": []}", 13, "p\xff.json", 7, &result) == CMS_INVALID_UTF8 &&
              result == sentinel,
          "ingest_page(a source name that is not UTF-8)");
    check(cms_session_ingest_page(session, NULL, 3, "p.json", 6, &result) == CMS_NULL_ARGUMENT && result == sentinel,
          "ingest_page(NULL page)");
    /* Reading the last error does not change it; a refused read is the last error then. */
    check(last_error_is("null_argument", "argument page is NULL") && last_error_is("null_argument", "argument page is NULL"),
          "the last error, read twice");
    check(cms_last_error_code(NULL) == CMS_NULL_ARGUMENT, "last_error_code(NULL)");
    check(last_error_is("null_argument", "argument code (an out-parameter) is NULL"), "a refused read of the last error");

    check(cms_session_free(session) == CMS_OK, "free the session");
    check(cms_session_free(session) == CMS_INVALID_HANDLE, "a second free of a session is refused");
    result = sentinel;
    check(cms_session_call(session, "version", 7, "", 0, &result) == CMS_INVALID_HANDLE && result == sentinel,
          "a freed session is refused");
    check(cms_session_free(NULL) == CMS_OK, "free(NULL session)");

    check(cms_month_end(NULL, "/tmp", &result) == CMS_NULL_ARGUMENT && result == sentinel, "month_end(NULL data)");
    check(cms_month_end("/tmp", "/tmp", NULL) == CMS_NULL_ARGUMENT, "month_end(NULL out)");
    check(cms_month_end("/tmp/\xff\xfe", "/tmp", &result) == CMS_INVALID_UTF8, "month_end(bad UTF-8)");
    check(cms_month_end("/nonexistent-cms-data", "/tmp/cms-c-never", &result) == CMS_IO && result == sentinel,
          "month_end of a missing folder");
    check(last_error_is("io", "no such data folder"), "missing folder is io, named");

    const char *code = NULL, *version = NULL;
    check(cms_status_code(CMS_UNKNOWN_NODE, &code) == CMS_OK && !strcmp(code, "unknown_node"), "status code string");
    check(cms_status_message(CMS_OK, NULL) == CMS_NULL_ARGUMENT, "status_message(NULL)");
    check(cms_version(&version) == CMS_OK && version && *version, "version");
    cms_http_fixture *fixture = NULL;
    check(cms_http_fixture_new("[{\"path\":1}]", 12, &fixture) == CMS_BAD_JSON && !fixture, "fixture with bad replies");
    check(cms_http_fixture_free(NULL) == CMS_OK, "fixture_free(NULL)");
}

/* A panic inside a call: debug builds of the library (the tests') panic on the method __test_panic while
 * holding the session. The call returns CMS_PANIC, the session refuses every later call, and everything
 * else works on. */
static void panic_path(void) {
    cms_session *broken = NULL, *other = NULL;
    char *sentinel = (char *)(uintptr_t)0x2, *result = sentinel;
    check(cms_session_new_memory(&broken) == CMS_OK && cms_session_new_memory(&other) == CMS_OK, "two sessions");
    cms_status status = cms_session_call(broken, "__test_panic", 12, "", 0, &result);
    check(status == CMS_PANIC && result == sentinel,
          "a panic inside a call is CMS_PANIC (got %d; a release build of the library answers CMS_INVALID_VALUE)", (int)status);
    check(last_error_is("panic", "panic caught: an internal error (a bug in cms): __test_panic was called"),
          "the panic's code and message");
    check(cms_session_call(broken, "version", 7, "", 0, &result) == CMS_PANIC && result == sentinel,
          "the session a panic happened in refuses later calls");
    check(last_error_is("panic", "the session is unusable after an internal error; free it"), "and says why");
    check(cms_session_call(other, "version", 7, "", 0, &result) == CMS_OK && result != sentinel && strstr(result, "\"version\""),
          "another session works on");
    if (result != sentinel) cms_string_free(result);
    const char *version = NULL;
    check(cms_version(&version) == CMS_OK && version && *version, "free functions work on");
    check(cms_session_free(broken) == CMS_OK, "a session broken by a panic is freed");
    check(cms_session_free(broken) == CMS_INVALID_HANDLE, "once");
    check(cms_session_free(other) == CMS_OK, "free the other session");
}

/* ---------------------------------------------------------------- 2. a full month on SQLite */

static const char *OPERATOR = "{\"id\":\"operator\",\"node\":\"platform\"}";

static int node_text_is(const json_node *node, const char *key, const char *expected) {
    const char *text = json_string(json_get(node, key));
    if (text && same_string(text, expected)) return 1;
    fprintf(stderr, "  %s: expected %s, got %s\n", key, expected, text ? text : "(none)");
    return 0;
}

static void full_month(void) {
    char *dir = scratch_dir(), *db = format("%s/cms.db", dir), *page_path = format("%s/tests/data/azure-stack-hub-sample-usage.json", root);
    size_t page_length = 0;
    char *page = read_file(page_path, &page_length);
    check(page != NULL, "read %s", page_path);
    cms_session *session = NULL;
    check(cms_session_new_sqlite(db, strlen(db), &session) == CMS_OK, "open a SQLite store");
    const char *vm = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5", *ip = "F271A8A3-88C4-4D93-956A-063E1D2FA80B",
               *sql = "9CD92D4C-BAFD-4492-B278-BEDC2DE8232A";
    char *setup = format(
        "{\"principal\":%s,\"at\":\"2025-03-01T00:00:00Z\",\"events\":["
        "{\"type\":\"node_added\",\"id\":\"northwind\",\"kind\":\"distributor\",\"parent\":null,\"name\":\"Northwind\"},"
        "{\"type\":\"node_added\",\"id\":\"contoso\",\"kind\":\"partner\",\"parent\":\"northwind\",\"name\":\"Contoso\"},"
        "{\"type\":\"node_added\",\"id\":\"fabrikam\",\"kind\":\"partner\",\"parent\":null,\"name\":\"Fabrikam\"},"
        "{\"type\":\"node_added\",\"id\":\"adatum\",\"kind\":\"tenant\",\"parent\":\"contoso\",\"name\":\"Adatum\"},"
        "{\"type\":\"node_added\",\"id\":\"woodgrove\",\"kind\":\"tenant\",\"parent\":\"contoso\",\"name\":\"Woodgrove\"},"
        "{\"type\":\"node_added\",\"id\":\"litware\",\"kind\":\"tenant\",\"parent\":\"fabrikam\",\"name\":\"Litware\"},"
        "{\"type\":\"node_added\",\"id\":\"3f2a6c1e-8b4d-4e1a-9c7f-2d5b8e0a1c11\",\"kind\":\"subscription\",\"parent\":\"adatum\",\"name\":\"A\"},"
        "{\"type\":\"node_added\",\"id\":\"7b9d0e42-1c3f-4a6b-8e2d-5f7a9c1b3d22\",\"kind\":\"subscription\",\"parent\":\"woodgrove\",\"name\":\"W\"},"
        "{\"type\":\"node_added\",\"id\":\"c41e8f73-6a2b-4d9c-b05e-8e3f1a7d4c33\",\"kind\":\"subscription\",\"parent\":\"litware\",\"name\":\"L\"},"
        "{\"type\":\"price_list_created\",\"list\":{\"id\":\"std\",\"name\":\"Standard\",\"currency\":\"USD\",\"tier_scope\":\"subscription\","
        "\"minimum_commitment\":null,\"versions\":[{\"effective\":\"2025-01-01T00:00:00Z\",\"content\":{\"kind\":\"own\",\"prices\":{"
        "\"%s\":{\"unit\":\"vCore-hours\",\"model\":{\"kind\":\"tiered\",\"mode\":\"graduated\",\"tiers\":[{\"from\":\"0\",\"rate\":\"0.05\"}]}},"
        "\"%s\":{\"unit\":\"IP-hours\",\"model\":{\"kind\":\"tiered\",\"mode\":\"graduated\",\"tiers\":[{\"from\":\"0\",\"rate\":\"0.25\"}]}},"
        "\"%s\":{\"unit\":\"units\",\"model\":{\"kind\":\"tiered\",\"mode\":\"graduated\",\"tiers\":[{\"from\":\"0\",\"rate\":\"0.5\"}]}}}}}]}},"
        "{\"type\":\"price_list_assigned\",\"scope\":\"default\",\"list\":\"std\"},"
        "{\"type\":\"commission_plan_put\",\"plan\":{\"id\":\"ten\",\"bands\":{\"mode\":\"graduated\",\"tiers\":[{\"from\":\"0\",\"rate\":\"0.10\"}]}}},"
        "{\"type\":\"commission_plan_assigned\",\"node\":\"contoso\",\"plan\":\"ten\"},"
        "{\"type\":\"override_rate_set\",\"node\":\"northwind\",\"rate\":\"0.02\"}]}",
        OPERATOR, vm, ip, sql);
    json_node result;
    if (call_json(session, "execute_all", setup, &result) == 0) {
        const json_node *seq = json_get(&result, "seq");
        check(seq && seq->text && !strcmp(seq->text, "14"), "the channel is onboarded in one command (14 events)");
        json_free(&result);
    } else {
        check(0, "onboard the channel");
    }
    free(setup);

    char *summary = NULL;
    check(cms_session_ingest_page(session, page, page_length, "sample.json", 11, &summary) == CMS_OK, "ingest the sample page");
    if (summary) {
        char error[200];
        if (json_parse(summary, strlen(summary), &result, error, sizeof error) == 0) {
            const json_node *stored = json_get(&result, "stored"), *refused = json_get(&result, "refused");
            check(stored && !strcmp(stored->text, "20") && refused && refused->count == 0, "20 records stored, none refused");
            json_free(&result);
        }
        cms_string_free(summary);
    }
    check(cms_session_ingest_page(session, page, 40, "cut.json", 8, &summary) == CMS_BAD_JSON, "a cut page is refused");
    check(last_error_is("bad_json", "cut.json"), "the refusal names the page");

    /* Close and reopen: everything is in the file. */
    check(cms_session_free(session) == CMS_OK, "close the session");
    session = NULL;
    check(cms_session_new_sqlite(db, strlen(db), &session) == CMS_OK, "reopen the SQLite store");
    check(cms_session_ingest_page(session, page, page_length, "again.json", 10, &summary) == CMS_OK && summary &&
              strstr(summary, "\"duplicates\":20"),
          "the same page again: 20 duplicates after reopening");
    cms_string_free(summary);

    char *params = format("{\"principal\":%s,\"period\":\"2025-03\"}", OPERATOR);
    if (call_json(session, "preview_invoices", params, &result) == 0) {
        int ok = result.type == JSON_ARRAY && result.count == 3 &&
                 node_text_is(&result.children[0], "buyer", "adatum") && node_text_is(&result.children[0], "total", "0.45") &&
                 node_text_is(&result.children[1], "buyer", "litware") && node_text_is(&result.children[1], "total", "0.20") &&
                 node_text_is(&result.children[2], "buyer", "woodgrove") && node_text_is(&result.children[2], "total", "2.00");
        check(ok, "drafts: adatum 4 x 0.05 + 1 x 0.25 = 0.45, litware 0.20, woodgrove 4 x 0.5 = 2.00");
        json_free(&result);
    } else {
        check(0, "preview invoices");
    }
    free(params);
    params = format("{\"principal\":%s,\"at\":\"2025-04-01T06:00:00Z\",\"period\":\"2025-03\"}", OPERATOR);
    if (call_json(session, "issue_invoices", params, &result) == 0) {
        int ok = result.type == JSON_ARRAY && result.count == 3 &&
                 node_text_is(&result.children[0], "number", "platform-000001") &&
                 node_text_is(&result.children[2], "number", "platform-000003") &&
                 node_text_is(&result.children[0], "due", "2025-05-01");
        check(ok, "issued with gapless numbers, due in 30 days");
        json_free(&result);
    } else {
        check(0, "issue invoices");
    }
    if (call_json(session, "issue_invoices", params, &result) == 0) {
        check(result.type == JSON_ARRAY && result.count == 0, "a second issue issues nothing");
        json_free(&result);
    }
    free(params);
    params = format("{\"principal\":%s,\"period\":\"2025-04\"}", OPERATOR);
    if (call_json(session, "commission_report", params, &result) == 0) {
        const json_node *statements = json_get(&result, "statements"), *overrides = json_get(&result, "overrides");
        int ok = statements && statements->count == 2 && overrides && overrides->count == 1 &&
                 node_text_is(&statements->children[0], "partner", "contoso") &&
                 node_text_is(&statements->children[0], "base", "2.45") &&
                 node_text_is(&statements->children[0], "commission", "0.25") &&
                 node_text_is(&overrides->children[0], "distributor", "northwind") &&
                 node_text_is(&overrides->children[0], "amount", "0.05");
        check(ok, "statements: contoso 10 %% of 2.45 = 0.25, northwind 2 %% of 2.45 = 0.05");
        json_free(&result);
    } else {
        check(0, "commission report");
    }
    free(params);
    if (call_json(session, "verify_documents", "", &result) == 0) {
        const json_node *intact = json_get(&result, "intact");
        check(intact && intact->type == JSON_BOOL && intact->boolean, "every issued body matches its hash");
        json_free(&result);
    }
    if (call_json(session, "verify_audit", "{\"strict\":true}", &result) == 0) {
        check(json_get(&result, "broken") && json_get(&result, "broken")->type == JSON_NULL, "the audit chain verifies");
        json_free(&result);
    }
    check(cms_session_free(session) == CMS_OK, "close the month's session");
    free(page);
    free(page_path);
    free(db);
    remove_tree(dir);
    free(dir);
}

/* ---------------------------------------------------------------- 3. the conformance vectors */

static int name_order(const void *left, const void *right) {
    return strcmp(*(char *const *)left, *(char *const *)right);
}

/* The *.json files of a folder, sorted (malloc'ed array of malloc'ed names); the count in *count. */
static char **json_files(const char *folder, size_t *count) {
    DIR *dir = opendir(folder);
    char **names = NULL;
    *count = 0;
    if (!dir) return NULL;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        size_t length = strlen(entry->d_name);
        if (length > 5 && !strcmp(entry->d_name + length - 5, ".json")) {
            names = realloc(names, (*count + 1) * sizeof *names);
            names[(*count)++] = format("%s/%s", folder, entry->d_name);
        }
    }
    closedir(dir);
    qsort(names, *count, sizeof *names, name_order);
    return names;
}

/* Check one call's outcome against a step's "result" or "error". */
static void check_outcome(const char *label, cms_status status, const char *result, const json_node *step) {
    const json_node *error = json_get(step, "error"), *expected = json_get(step, "result");
    char why[600] = "";
    if (error) {
        const char *code = json_string(json_get(error, "code"));
        const char *fragment = json_string(json_get(error, "message_contains"));
        if (status == CMS_OK) {
            check(0, "%s: expected error %s, got a result", label, code);
            return;
        }
        const char *status_code = NULL;
        cms_status_code(status, &status_code);
        check(code && (!strcmp(status_code, code) || status == CMS_UNKNOWN_ERROR) && last_error_is(code, fragment),
              "%s: expected error %s, got status %d (%s)", label, code, (int)status, status_code);
        return;
    }
    if (status != CMS_OK) {
        char *message = last_message();
        check(0, "%s: unexpected error: %s", label, message ? message : "?");
        cms_string_free(message);
        return;
    }
    if (!expected) {
        check(1, "%s", label);
        return;
    }
    json_node actual;
    char error_text[200];
    if (json_parse(result, strlen(result), &actual, error_text, sizeof error_text)) {
        check(0, "%s: result is not JSON: %s", label, error_text);
        return;
    }
    int ok = matches(&actual, expected, "result", why, sizeof why);
    check(ok, "%s: %s", label, why);
    json_free(&actual);
}

/* Substitute the tokens of the protocol in a sub-document's text (malloc'ed). */
static char *substitute(const char *source, const json_node *node, const char *vectors, const char *scratch, const char *http) {
    char *text = malloc(node->end - node->start + 1);
    memcpy(text, source + node->start, node->end - node->start);
    text[node->end - node->start] = '\0';
    const char *tokens[3][2] = {{"{vectors}", vectors}, {"{scratch}", scratch}, {"{http}", http}};
    for (int i = 0; i < 3; i++) {
        char *next = replace(text, tokens[i][0], tokens[i][1]);
        free(text);
        text = next;
    }
    return text;
}

/* Replay one case of a call file on a fresh session (a SQLite file in its scratch folder). */
static void replay_case(const char *label, const char *source, const json_node *item, const char *vectors) {
    char *scratch = scratch_dir(), *url = NULL;
    cms_http_fixture *fixture = NULL;
    const json_node *http = json_get(item, "http"), *open = json_get(item, "open"), *open_error = json_get(item, "open_error");
    if (http) {
        check(cms_http_fixture_new(source + http->start, http->end - http->start, &fixture) == CMS_OK &&
                  cms_http_fixture_url(fixture, &url) == CMS_OK,
              "%s: http fixture", label);
    }
    char *db = format("%s/cms.db", scratch);
    if (open && json_get(open, "sqlite")) {
        free(db);
        db = replace(json_string(json_get(open, "sqlite")), "{scratch}", scratch);
    }
    cms_session *session = NULL;
    cms_status opened = (open && open->type == JSON_STRING && !strcmp(open->text, "memory"))
                            ? cms_session_new_memory(&session)
                            : cms_session_new_sqlite(db, strlen(db), &session);
    if (open_error) {
        const char *code = json_string(json_get(open_error, "code"));
        check(opened != CMS_OK && last_error_is(code, json_string(json_get(open_error, "message_contains"))),
              "%s: opening should fail with %s", label, code);
    } else if (opened != CMS_OK) {
        check(0, "%s: open the store", label);
    } else {
        const json_node *steps = json_get(item, "steps");
        for (size_t i = 0; steps && i < steps->count; i++) {
            const json_node *step = &steps->children[i];
            if (json_get(step, "reopen")) {
                cms_session_free(session);
                session = NULL;
                check(cms_session_new_sqlite(db, strlen(db), &session) == CMS_OK, "%s: reopen", label);
                continue;
            }
            const char *method = json_string(json_get(step, "method"));
            const json_node *params_node = json_get(step, "params");
            char *params = params_node ? substitute(source, params_node, vectors, scratch, url ? url : "") : format("");
            char *result = NULL, *step_label = format("%s step %zu (%s)", label, i, method);
            cms_status status = call(session, method, params, &result);
            check_outcome(step_label, status, result, step);
            cms_string_free(result);
            free(step_label);
            free(params);
        }
    }
    cms_session_free(session);
    cms_http_fixture_free(fixture);
    cms_string_free(url);
    free(db);
    remove_tree(scratch);
    free(scratch);
}

static void vector_file(const char *path, const char *vectors) {
    size_t length = 0;
    char *source = read_file(path, &length), error[200];
    json_node document;
    if (!source || json_parse(source, length, &document, error, sizeof error)) {
        check(0, "read %s: %s", path, source ? error : "cannot open");
        free(source);
        return;
    }
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const json_node *cases = json_get(&document, "cases");
    for (size_t i = 0; cases && i < cases->count; i++) {
        const json_node *item = &cases->children[i];
        char *label = format("%s #%zu", name, i);
        if (json_get(item, "kind")) {
            /* A case of the case files: one call of evaluate_vector with the case as it is written. */
            char *params = format("{\"case\":%.*s}", (int)(item->end - item->start), source + item->start);
            char *result = NULL;
            cms_status status = call(NULL, "evaluate_vector", params, &result);
            const json_node *expect = json_get(item, "expect");
            json_node step;
            memset(&step, 0, sizeof step);
            step.type = JSON_OBJECT;
            /* A step view of `expect`: {"error": ...} or {"result": expect}. */
            const json_node *error = json_get(expect, "error");
            char *keys[1] = {error ? "error" : "result"};
            step.count = 1;
            step.keys = keys;
            step.children = (json_node *)(error ? error : expect);
            check_outcome(label, status, result, &step);
            cms_string_free(result);
            free(params);
        } else {
            replay_case(label, source, item, vectors);
        }
        free(label);
    }
    json_free(&document);
    free(source);
}

static void conformance_vectors(void) {
    char *vectors = format("%s/tests/vectors", root), *calls = format("%s/calls", vectors);
    const char *folders[2] = {vectors, calls};
    size_t total = 0;
    for (int f = 0; f < 2; f++) {
        size_t count = 0;
        char **files = json_files(folders[f], &count);
        total += count;
        for (size_t i = 0; i < count; i++) {
            vector_file(files[i], vectors);
            free(files[i]);
        }
        free(files);
    }
    check(total >= 14, "found the vector files (%zu)", total);
    free(calls);
    free(vectors);
}

/* ---------------------------------------------------------------- 4. the month-end on a generated workload */

static void month_end(const char *data, const char *expected) {
    char *out = scratch_dir(), *summary = NULL, error[200];
    check(cms_month_end(data, out, &summary) == CMS_OK, "month-end of %s", data);
    const char *names[4] = {"invoice_lines.csv", "invoices.csv", "commissions.csv", "overrides.csv"};
    size_t lines[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        char *mine_path = format("%s/%s", out, names[i]), *theirs_path = format("%s/%s", expected, names[i]);
        size_t mine_length = 0, theirs_length = 0;
        char *mine = read_file(mine_path, &mine_length), *theirs = read_file(theirs_path, &theirs_length);
        check(mine && theirs && mine_length == theirs_length && !memcmp(mine, theirs, mine_length),
              "%s is byte-identical to %s", mine_path, theirs_path);
        for (size_t at = 0; theirs && at < theirs_length; at++) lines[i] += theirs[at] == '\n';
        free(mine); free(theirs); free(mine_path); free(theirs_path);
    }
    json_node parsed;
    if (summary && json_parse(summary, strlen(summary), &parsed, error, sizeof error) == 0) {
        const json_node *invoices = json_get(&parsed, "invoices"), *invoice_lines = json_get(&parsed, "invoice_lines");
        check(invoices && strtoull(invoices->text, NULL, 10) == lines[1] - 1 && invoice_lines &&
                  strtoull(invoice_lines->text, NULL, 10) == lines[0] - 1,
              "the summary counts the invoices and lines the files hold");
        const json_node *totals = json_get(&parsed, "totals");
        check(totals && totals->type == JSON_OBJECT && totals->count >= 1 && totals->children[0].type == JSON_STRING,
              "totals per currency are decimal strings");
        json_free(&parsed);
    } else {
        check(0, "the month-end summary is JSON");
    }
    cms_string_free(summary);
    remove_tree(out);
    free(out);
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: %s REPO_ROOT [WORKLOAD_DIR EXPECTED_OUTPUTS_DIR]\n", argv[0]);
        return 2;
    }
    root = argv[1];
    hostile_calls();
    panic_path();
    full_month();
    conformance_vectors();
    if (argc == 4) month_end(argv[2], argv[3]);
    printf("c: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
