/*
 * json.h: a small JSON reader for the C test harness of cms.h (written for this harness, same license as
 * the project). It parses a document into a tree, keeps each value's byte span in the source (so a
 * sub-document can be handed to the library as the exact text it was), unescapes strings to UTF-8, and
 * keeps numbers as their text (the harness compares them as text; decimals travel as strings anyway).
 *
 * Single header: define JSON_IMPLEMENTATION in exactly one file before including it.
 */
#ifndef CMS_TEST_JSON_H
#define CMS_TEST_JSON_H

#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_node {
    json_type type;
    int boolean;               /* JSON_BOOL */
    char *text;                /* JSON_STRING: unescaped, NUL-terminated; JSON_NUMBER: the number as written */
    size_t count;              /* JSON_ARRAY, JSON_OBJECT: number of children */
    struct json_node *children; /* the values */
    char **keys;               /* JSON_OBJECT: the keys, unescaped */
    size_t start, end;         /* the value's bytes in the source: [start, end) */
} json_node;

/* Parse `length` bytes of `source` into `root`. Returns 0, or -1 with a message in `error`. */
int json_parse(const char *source, size_t length, json_node *root, char *error, size_t error_size);
/* Free what json_parse allocated under `node` (not `node` itself). */
void json_free(json_node *node);
/* The value of `key` in an object, or NULL. */
const json_node *json_get(const json_node *object, const char *key);
/* The string of a JSON_STRING, or NULL. */
const char *json_string(const json_node *node);

#ifdef JSON_IMPLEMENTATION

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *source;
    size_t length, at;
    int depth;
    char *error;
    size_t error_size;
} json_parser;

static int json_fail(json_parser *parser, const char *what) {
    snprintf(parser->error, parser->error_size, "%s at byte %zu", what, parser->at);
    return -1;
}

static void json_skip_space(json_parser *parser) {
    while (parser->at < parser->length) {
        char c = parser->source[parser->at];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        parser->at++;
    }
}

static int json_hex4(json_parser *parser, unsigned *value) {
    if (parser->at + 4 > parser->length) return json_fail(parser, "short \\u escape");
    *value = 0;
    for (int i = 0; i < 4; i++) {
        char c = parser->source[parser->at++];
        unsigned digit;
        if (c >= '0' && c <= '9') digit = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') digit = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') digit = (unsigned)(c - 'A' + 10);
        else return json_fail(parser, "bad \\u escape");
        *value = *value * 16 + digit;
    }
    return 0;
}

/* Parse a string (the parser is at its opening quote) into a new NUL-terminated buffer. */
static int json_parse_string(json_parser *parser, char **out) {
    parser->at++; /* the quote */
    size_t capacity = 16, used = 0;
    char *buffer = malloc(capacity);
    if (!buffer) return json_fail(parser, "out of memory");
    for (;;) {
        if (parser->at >= parser->length) { free(buffer); return json_fail(parser, "unterminated string"); }
        unsigned char c = (unsigned char)parser->source[parser->at++];
        char bytes[4];
        size_t count = 1;
        if (c == '"') break;
        if (c < 0x20) { free(buffer); return json_fail(parser, "control character in string"); }
        if (c != '\\') {
            bytes[0] = (char)c;
        } else {
            if (parser->at >= parser->length) { free(buffer); return json_fail(parser, "unterminated escape"); }
            char e = parser->source[parser->at++];
            unsigned code = 0;
            switch (e) {
            case '"': bytes[0] = '"'; break;
            case '\\': bytes[0] = '\\'; break;
            case '/': bytes[0] = '/'; break;
            case 'b': bytes[0] = '\b'; break;
            case 'f': bytes[0] = '\f'; break;
            case 'n': bytes[0] = '\n'; break;
            case 'r': bytes[0] = '\r'; break;
            case 't': bytes[0] = '\t'; break;
            case 'u':
                if (json_hex4(parser, &code)) { free(buffer); return -1; }
                if (code >= 0xD800 && code <= 0xDBFF) {
                    unsigned low;
                    if (parser->at + 2 > parser->length || parser->source[parser->at] != '\\' ||
                        parser->source[parser->at + 1] != 'u') {
                        free(buffer);
                        return json_fail(parser, "lone surrogate");
                    }
                    parser->at += 2;
                    if (json_hex4(parser, &low)) { free(buffer); return -1; }
                    if (low < 0xDC00 || low > 0xDFFF) { free(buffer); return json_fail(parser, "bad surrogate pair"); }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                } else if (code >= 0xDC00 && code <= 0xDFFF) {
                    free(buffer);
                    return json_fail(parser, "lone surrogate");
                }
                if (code == 0) { free(buffer); return json_fail(parser, "\\u0000 in a string"); }
                if (code < 0x80) { bytes[0] = (char)code; }
                else if (code < 0x800) { bytes[0] = (char)(0xC0 | (code >> 6)); bytes[1] = (char)(0x80 | (code & 0x3F)); count = 2; }
                else if (code < 0x10000) {
                    bytes[0] = (char)(0xE0 | (code >> 12)); bytes[1] = (char)(0x80 | ((code >> 6) & 0x3F));
                    bytes[2] = (char)(0x80 | (code & 0x3F)); count = 3;
                } else {
                    bytes[0] = (char)(0xF0 | (code >> 18)); bytes[1] = (char)(0x80 | ((code >> 12) & 0x3F));
                    bytes[2] = (char)(0x80 | ((code >> 6) & 0x3F)); bytes[3] = (char)(0x80 | (code & 0x3F)); count = 4;
                }
                break;
            default: free(buffer); return json_fail(parser, "bad escape");
            }
        }
        if (used + count + 1 > capacity) {
            while (used + count + 1 > capacity) capacity *= 2;
            char *grown = realloc(buffer, capacity);
            if (!grown) { free(buffer); return json_fail(parser, "out of memory"); }
            buffer = grown;
        }
        memcpy(buffer + used, bytes, count);
        used += count;
    }
    buffer[used] = '\0';
    *out = buffer;
    return 0;
}

static int json_parse_value(json_parser *parser, json_node *node);

/* Append a zeroed child (and, for objects, its key) to a container. */
static json_node *json_push(json_parser *parser, json_node *node, char *key) {
    json_node *grown = realloc(node->children, (node->count + 1) * sizeof *grown);
    if (!grown) { json_fail(parser, "out of memory"); return NULL; }
    node->children = grown;
    if (node->type == JSON_OBJECT) {
        char **keys = realloc(node->keys, (node->count + 1) * sizeof *keys);
        if (!keys) { json_fail(parser, "out of memory"); return NULL; }
        node->keys = keys;
        node->keys[node->count] = key;
    }
    json_node *child = &node->children[node->count++];
    memset(child, 0, sizeof *child);
    return child;
}

static int json_parse_container(json_parser *parser, json_node *node, char close) {
    parser->at++; /* [ or { */
    if (++parser->depth > 256) return json_fail(parser, "nested too deep");
    json_skip_space(parser);
    if (parser->at < parser->length && parser->source[parser->at] == close) {
        parser->at++;
        parser->depth--;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        json_skip_space(parser);
        if (node->type == JSON_OBJECT) {
            if (parser->at >= parser->length || parser->source[parser->at] != '"') return json_fail(parser, "expected a key");
            if (json_parse_string(parser, &key)) return -1;
            json_skip_space(parser);
            if (parser->at >= parser->length || parser->source[parser->at] != ':') { free(key); return json_fail(parser, "expected ':'"); }
            parser->at++;
        }
        json_node *child = json_push(parser, node, key);
        if (!child) { free(key); return -1; }
        if (json_parse_value(parser, child)) return -1;
        json_skip_space(parser);
        if (parser->at >= parser->length) return json_fail(parser, "unterminated container");
        char c = parser->source[parser->at++];
        if (c == close) break;
        if (c != ',') return json_fail(parser, "expected ',' or the end of the container");
    }
    parser->depth--;
    return 0;
}

static int json_parse_value(json_parser *parser, json_node *node) {
    json_skip_space(parser);
    if (parser->at >= parser->length) return json_fail(parser, "expected a value");
    node->start = parser->at;
    const char *rest = parser->source + parser->at;
    size_t left = parser->length - parser->at;
    char c = *rest;
    int status = 0;
    if (c == '{') { node->type = JSON_OBJECT; status = json_parse_container(parser, node, '}'); }
    else if (c == '[') { node->type = JSON_ARRAY; status = json_parse_container(parser, node, ']'); }
    else if (c == '"') { node->type = JSON_STRING; status = json_parse_string(parser, &node->text); }
    else if (left >= 4 && !strncmp(rest, "null", 4)) { node->type = JSON_NULL; parser->at += 4; }
    else if (left >= 4 && !strncmp(rest, "true", 4)) { node->type = JSON_BOOL; node->boolean = 1; parser->at += 4; }
    else if (left >= 5 && !strncmp(rest, "false", 5)) { node->type = JSON_BOOL; parser->at += 5; }
    else if (c == '-' || (c >= '0' && c <= '9')) {
        size_t length = 0;
        while (length < left && strchr("+-0123456789.eE", rest[length])) length++;
        node->type = JSON_NUMBER;
        node->text = malloc(length + 1);
        if (!node->text) return json_fail(parser, "out of memory");
        memcpy(node->text, rest, length);
        node->text[length] = '\0';
        parser->at += length;
    } else {
        return json_fail(parser, "unexpected character");
    }
    node->end = parser->at;
    return status;
}

int json_parse(const char *source, size_t length, json_node *root, char *error, size_t error_size) {
    json_parser parser = {source, length, 0, 0, error, error_size};
    memset(root, 0, sizeof *root);
    if (json_parse_value(&parser, root)) { json_free(root); return -1; }
    json_skip_space(&parser);
    if (parser.at != length) { json_free(root); return json_fail(&parser, "trailing text"); }
    return 0;
}

void json_free(json_node *node) {
    for (size_t i = 0; i < node->count; i++) {
        json_free(&node->children[i]);
        if (node->keys) free(node->keys[i]);
    }
    free(node->children);
    free(node->keys);
    free(node->text);
    memset(node, 0, sizeof *node);
}

const json_node *json_get(const json_node *object, const char *key) {
    if (!object || object->type != JSON_OBJECT) return NULL;
    for (size_t i = 0; i < object->count; i++)
        if (!strcmp(object->keys[i], key)) return &object->children[i];
    return NULL;
}

const char *json_string(const json_node *node) {
    return node && node->type == JSON_STRING ? node->text : NULL;
}

#endif /* JSON_IMPLEMENTATION */
#endif /* CMS_TEST_JSON_H */
