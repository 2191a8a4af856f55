// Sextant — an embedded vector database. Licensed under Apache-2.0.
//
// Streaming compression for exports and backups: gzip through zlib (linked; its headers ship with the
// machine image) and zstd through libzstd loaded at run time with dlopen (its headers usually do not),
// declaring the few functions used ourselves. Without libzstd, zstd is a clear error, not a build failure.
//
// A writer compresses into a file descriptor it does not own; a reader decompresses from one. All
// functions return 0 (or a byte count) on success and -1 on failure, with a message in `err`.

#ifndef SEXTANT_CODECS_H
#define SEXTANT_CODECS_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { SX_CODEC_GZIP = 1, SX_CODEC_ZSTD = 2 };

typedef struct sx_codec_writer sx_codec_writer;
typedef struct sx_codec_reader sx_codec_reader;

/// 1 when the codec can be used in this process (zstd: libzstd.so.1 could be loaded).
int sx_codec_available(int codec, char *err, size_t errlen);

sx_codec_writer *sx_codec_writer_open(int codec, int fd, int level, char *err, size_t errlen);
/// Compresses `n` bytes and writes what is ready to the descriptor.
int sx_codec_write(sx_codec_writer *w, const void *bytes, size_t n, char *err, size_t errlen);
/// Finishes the stream (writes the trailer) and frees the writer, whatever the outcome.
int sx_codec_writer_close(sx_codec_writer *w, char *err, size_t errlen);

sx_codec_reader *sx_codec_reader_open(int codec, int fd, char *err, size_t errlen);

/// Where a writer opened with `sx_codec_writer_open_sink` sends compressed bytes (all of them): 0 on
/// success, -1 on failure (the caller keeps its own error; the codec reports "the output failed").
typedef int (*sx_codec_sink)(void *context, const void *bytes, size_t n);
/// Where a reader opened with `sx_codec_reader_open_source` takes compressed bytes from: a count, 0 at
/// the end, -1 on failure (the caller keeps its own error).
typedef ssize_t (*sx_codec_source)(void *context, void *buffer, size_t capacity);

/// As `sx_codec_writer_open`, writing through `sink` instead of a descriptor (encrypted exports:
/// compress, then encrypt).
sx_codec_writer *sx_codec_writer_open_sink(int codec, sx_codec_sink sink, void *context, int level, char *err, size_t errlen);
/// As `sx_codec_reader_open`, reading through `source` instead of a descriptor (decrypt, then decompress).
sx_codec_reader *sx_codec_reader_open_source(int codec, sx_codec_source source, void *context, char *err, size_t errlen);
/// Up to `cap` decompressed bytes; 0 at the end of the stream; -1 on damage or I/O error.
ssize_t sx_codec_read(sx_codec_reader *r, void *out, size_t cap, char *err, size_t errlen);
void sx_codec_reader_close(sx_codec_reader *r);

#ifdef __cplusplus
}
#endif

#endif
