// Sextant — an embedded vector database. Licensed under Apache-2.0.

#include "sextant_codecs.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (1 << 17)

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

static int write_all(int fd, const unsigned char *p, size_t n, char *err, size_t errlen) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (err && errlen) snprintf(err, errlen, "write: %s (errno %d)", strerror(errno), errno);
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

// ---------------------------------------------------------------- zstd, loaded at run time

typedef struct { const void *src; size_t size; size_t pos; } zbuf_in;
typedef struct { void *dst; size_t size; size_t pos; } zbuf_out;

static struct {
    void *(*createCStream)(void);
    size_t (*freeCStream)(void *);
    size_t (*initCStream)(void *, int);
    size_t (*compressStream)(void *, zbuf_out *, zbuf_in *);
    size_t (*endStream)(void *, zbuf_out *);
    void *(*createDStream)(void);
    size_t (*freeDStream)(void *);
    size_t (*initDStream)(void *);
    size_t (*decompressStream)(void *, zbuf_out *, zbuf_in *);
    unsigned (*isError)(size_t);
    const char *(*getErrorName)(size_t);
    int loaded;  // 1 ok, -1 failed
    char why[256];
} zstd;

static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;

static void zstd_load(void) {
    const char *names[] = {"libzstd.so.1", "libzstd.so", "libzstd.1.dylib", "libzstd.dylib"};
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(zstd.why, sizeof zstd.why, "zstd needs libzstd (libzstd.so.1), which could not be loaded: install the libzstd1 package, or use gzip");
        zstd.loaded = -1;
        return;
    }
#define LOAD(field, name)                                                                                   \
    do {                                                                                                    \
        *(void **)(&zstd.field) = dlsym(h, name);                                                           \
        if (!zstd.field) {                                                                                  \
            snprintf(zstd.why, sizeof zstd.why, "libzstd lacks %s (too old?)", name);                       \
            zstd.loaded = -1;                                                                               \
            return;                                                                                         \
        }                                                                                                   \
    } while (0)
    LOAD(createCStream, "ZSTD_createCStream");
    LOAD(freeCStream, "ZSTD_freeCStream");
    LOAD(initCStream, "ZSTD_initCStream");
    LOAD(compressStream, "ZSTD_compressStream");
    LOAD(endStream, "ZSTD_endStream");
    LOAD(createDStream, "ZSTD_createDStream");
    LOAD(freeDStream, "ZSTD_freeDStream");
    LOAD(initDStream, "ZSTD_initDStream");
    LOAD(decompressStream, "ZSTD_decompressStream");
    LOAD(isError, "ZSTD_isError");
    LOAD(getErrorName, "ZSTD_getErrorName");
#undef LOAD
    zstd.loaded = 1;
}

int sx_codec_available(int codec, char *err, size_t errlen) {
    if (codec == SX_CODEC_GZIP) return 1;
    if (codec == SX_CODEC_ZSTD) {
        pthread_once(&zstd_once, zstd_load);
        if (zstd.loaded == 1) return 1;
        set_err(err, errlen, zstd.why);
        return 0;
    }
    set_err(err, errlen, "unknown codec");
    return 0;
}

// ---------------------------------------------------------------- writers

struct sx_codec_writer {
    int codec;
    int fd;
    sx_codec_sink sink;  // when set, used instead of fd
    void *context;
    z_stream z;
    void *zs;
    unsigned char out[CHUNK];
};

static int emit(sx_codec_writer *w, const unsigned char *p, size_t n, char *err, size_t errlen) {
    if (!w->sink) return write_all(w->fd, p, n, err, errlen);
    if (n == 0 || w->sink(w->context, p, n) == 0) return 0;
    set_err(err, errlen, "the output failed");
    return -1;
}

static sx_codec_writer *open_writer(int codec, int fd, sx_codec_sink sink, void *context, int level, char *err, size_t errlen) {
    if (!sx_codec_available(codec, err, errlen)) return NULL;
    sx_codec_writer *w = calloc(1, sizeof *w);
    if (!w) { set_err(err, errlen, "out of memory"); return NULL; }
    w->codec = codec;
    w->fd = fd;
    w->sink = sink;
    w->context = context;
    if (codec == SX_CODEC_GZIP) {
        // windowBits 15 + 16: a gzip wrapper, readable by gunzip and Python's gzip module.
        if (deflateInit2(&w->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            set_err(err, errlen, "zlib: deflateInit2 failed");
            free(w);
            return NULL;
        }
    } else {
        w->zs = zstd.createCStream();
        if (!w->zs || zstd.isError(zstd.initCStream(w->zs, level))) {
            set_err(err, errlen, "zstd: could not start a compression stream");
            if (w->zs) zstd.freeCStream(w->zs);
            free(w);
            return NULL;
        }
    }
    return w;
}

sx_codec_writer *sx_codec_writer_open(int codec, int fd, int level, char *err, size_t errlen) {
    return open_writer(codec, fd, NULL, NULL, level, err, errlen);
}

sx_codec_writer *sx_codec_writer_open_sink(int codec, sx_codec_sink sink, void *context, int level, char *err, size_t errlen) {
    return open_writer(codec, -1, sink, context, level, err, errlen);
}

int sx_codec_write(sx_codec_writer *w, const void *bytes, size_t n, char *err, size_t errlen) {
    if (w->codec == SX_CODEC_GZIP) {
        w->z.next_in = (Bytef *)bytes;
        w->z.avail_in = (uInt)n;
        while (w->z.avail_in > 0) {
            w->z.next_out = w->out;
            w->z.avail_out = CHUNK;
            if (deflate(&w->z, Z_NO_FLUSH) == Z_STREAM_ERROR) { set_err(err, errlen, "zlib: deflate failed"); return -1; }
            if (emit(w, w->out, CHUNK - w->z.avail_out, err, errlen) != 0) return -1;
        }
        return 0;
    }
    zbuf_in in = {bytes, n, 0};
    while (in.pos < in.size) {
        zbuf_out out = {w->out, CHUNK, 0};
        size_t r = zstd.compressStream(w->zs, &out, &in);
        if (zstd.isError(r)) { if (err && errlen) snprintf(err, errlen, "zstd: %s", zstd.getErrorName(r)); return -1; }
        if (emit(w, w->out, out.pos, err, errlen) != 0) return -1;
    }
    return 0;
}

int sx_codec_writer_close(sx_codec_writer *w, char *err, size_t errlen) {
    int rc = 0;
    if (w->codec == SX_CODEC_GZIP) {
        int z;
        do {
            w->z.next_in = NULL;
            w->z.avail_in = 0;
            w->z.next_out = w->out;
            w->z.avail_out = CHUNK;
            z = deflate(&w->z, Z_FINISH);
            if (z == Z_STREAM_ERROR) { set_err(err, errlen, "zlib: deflate failed"); rc = -1; break; }
            if (emit(w, w->out, CHUNK - w->z.avail_out, err, errlen) != 0) { rc = -1; break; }
        } while (z != Z_STREAM_END);
        deflateEnd(&w->z);
    } else {
        size_t left;
        do {
            zbuf_out out = {w->out, CHUNK, 0};
            left = zstd.endStream(w->zs, &out);
            if (zstd.isError(left)) { if (err && errlen) snprintf(err, errlen, "zstd: %s", zstd.getErrorName(left)); rc = -1; break; }
            if (emit(w, w->out, out.pos, err, errlen) != 0) { rc = -1; break; }
        } while (left > 0);
        zstd.freeCStream(w->zs);
    }
    free(w);
    return rc;
}

// ---------------------------------------------------------------- readers

struct sx_codec_reader {
    int codec;
    int fd;
    sx_codec_source source;  // when set, used instead of fd
    void *context;
    int eof_in;     // the descriptor is exhausted
    int done;       // the stream ended
    z_stream z;
    void *zs;
    zbuf_in zin;
    unsigned char in[CHUNK];
};

static sx_codec_reader *open_reader(int codec, int fd, sx_codec_source source, void *context, char *err, size_t errlen) {
    if (!sx_codec_available(codec, err, errlen)) return NULL;
    sx_codec_reader *r = calloc(1, sizeof *r);
    if (!r) { set_err(err, errlen, "out of memory"); return NULL; }
    r->codec = codec;
    r->fd = fd;
    r->source = source;
    r->context = context;
    if (codec == SX_CODEC_GZIP) {
        if (inflateInit2(&r->z, 15 + 16) != Z_OK) { set_err(err, errlen, "zlib: inflateInit2 failed"); free(r); return NULL; }
    } else {
        r->zs = zstd.createDStream();
        if (!r->zs || zstd.isError(zstd.initDStream(r->zs))) {
            set_err(err, errlen, "zstd: could not start a decompression stream");
            if (r->zs) zstd.freeDStream(r->zs);
            free(r);
            return NULL;
        }
        r->zin.src = r->in;
    }
    return r;
}

sx_codec_reader *sx_codec_reader_open(int codec, int fd, char *err, size_t errlen) {
    return open_reader(codec, fd, NULL, NULL, err, errlen);
}

sx_codec_reader *sx_codec_reader_open_source(int codec, sx_codec_source source, void *context, char *err, size_t errlen) {
    return open_reader(codec, -1, source, context, err, errlen);
}

static ssize_t fill(sx_codec_reader *r, char *err, size_t errlen) {
    ssize_t n;
    if (r->source) {
        n = r->source(r->context, r->in, CHUNK);
        if (n < 0) { set_err(err, errlen, "the input failed"); return -1; }
        if (n == 0) r->eof_in = 1;
        return n;
    }
    do { n = read(r->fd, r->in, CHUNK); } while (n < 0 && errno == EINTR);
    if (n < 0) { if (err && errlen) snprintf(err, errlen, "read: %s (errno %d)", strerror(errno), errno); return -1; }
    if (n == 0) r->eof_in = 1;
    return n;
}

ssize_t sx_codec_read(sx_codec_reader *r, void *out, size_t cap, char *err, size_t errlen) {
    if (r->done || cap == 0) return 0;
    if (r->codec == SX_CODEC_GZIP) {
        r->z.next_out = out;
        r->z.avail_out = (uInt)cap;
        while (r->z.avail_out == cap) {
            if (r->z.avail_in == 0 && !r->eof_in) {
                ssize_t n = fill(r, err, errlen);
                if (n < 0) return -1;
                r->z.next_in = r->in;
                r->z.avail_in = (uInt)n;
            }
            int z = inflate(&r->z, Z_NO_FLUSH);
            if (z == Z_STREAM_END) {
                // Concatenated gzip members are one stream to gunzip; accept them too.
                if (r->z.avail_in == 0 && !r->eof_in) {
                    ssize_t n = fill(r, err, errlen);
                    if (n < 0) return -1;
                    r->z.next_in = r->in;
                    r->z.avail_in = (uInt)n;
                }
                if (r->z.avail_in > 0) { inflateReset(&r->z); continue; }
                r->done = 1;
                break;
            }
            if (z != Z_OK && z != Z_BUF_ERROR) { set_err(err, errlen, "gzip data is damaged"); return -1; }
            if (z == Z_BUF_ERROR && r->eof_in && r->z.avail_in == 0) { set_err(err, errlen, "gzip data is truncated"); return -1; }
        }
        return (ssize_t)(cap - r->z.avail_out);
    }
    zbuf_out o = {out, cap, 0};
    while (o.pos == 0) {
        if (r->zin.pos == r->zin.size) {
            if (r->eof_in) {
                if (r->done) return 0;
                set_err(err, errlen, "zstd data is truncated");
                return -1;
            }
            ssize_t n = fill(r, err, errlen);
            if (n < 0) return -1;
            r->zin.size = (size_t)n;
            r->zin.pos = 0;
            if (n == 0) continue;
        }
        size_t rc = zstd.decompressStream(r->zs, &o, &r->zin);
        if (zstd.isError(rc)) { if (err && errlen) snprintf(err, errlen, "zstd data is damaged: %s", zstd.getErrorName(rc)); return -1; }
        if (rc == 0 && r->zin.pos == r->zin.size) {
            // A frame ended exactly at the buffer's end: the stream may be over.
            if (!r->eof_in) {
                ssize_t n = fill(r, err, errlen);
                if (n < 0) return -1;
                r->zin.size = (size_t)n;
                r->zin.pos = 0;
            }
            if (r->eof_in && r->zin.size == 0) { r->done = 1; break; }
        }
    }
    return (ssize_t)o.pos;
}

void sx_codec_reader_close(sx_codec_reader *r) {
    if (!r) return;
    if (r->codec == SX_CODEC_GZIP) inflateEnd(&r->z);
    else zstd.freeDStream(r->zs);
    free(r);
}
